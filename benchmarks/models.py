"""Per model: parameters, forward img/s at 224 px and train-step img/s at 128 px on this CPU.

Prints one JSON line. Models use their paper configuration with random backbone weights
(speed does not depend on the values; runs offline). Train steps are Adam steps of the
paper's loss compiled by tf.function, batch 8; frozen backbones stay frozen.
Run it niced: `nice -n 10 python benchmarks/models.py` (a few minutes on 2 cores).
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from koala import models  # noqa: E402
from koala.training import losses  # noqa: E402

# label -> (registered name, config)
CONFIGS = {
    "koalarization": ("koalarization", {}),
    "effnet_head": ("effnet_head", {"weights": None}),
    "effnet_head_lite0": ("effnet_head", {"backbone": "efficientnet_lite0", "weights": None}),
    "effnet_unet": ("effnet_unet", {"weights": None}),
    "zhang_eccv16": ("zhang_eccv16", {}),
    "iizuka": ("iizuka", {}),
    "unet": ("unet", {}),
}


def inputs_for(model, batch, size):
    feeds = {"L": tf.random.uniform((batch, size, size, 1), -1.0, 1.0)}
    if "embedding" in model.input:
        feeds["embedding"] = tf.random.normal((batch, model.input["embedding"].shape[-1]))
    return feeds


def colour_output(outputs):
    if isinstance(outputs, dict):
        return outputs["ab"] if "ab" in outputs else outputs["ab_logits"]
    return outputs


def images_per_second(step, batch, min_seconds):
    """Run `step` once to trace, then until min_seconds (at least 2 times); img/s."""
    step()
    runs, start = 0, time.perf_counter()
    while runs < 2 or time.perf_counter() - start < min_seconds:
        step()
        runs += 1
    return batch * runs / (time.perf_counter() - start)


def forward_speed(name, config, batch, size, min_seconds):
    model = models.build(name, input_size=size, **config)
    feeds = inputs_for(model, batch, size)
    forward = tf.function(lambda: model(feeds, training=False))
    return model.count_params(), images_per_second(forward, batch, min_seconds)


def train_speed(name, config, batch, size, min_seconds):
    model = models.build(name, input_size=size, **config)
    feeds = inputs_for(model, batch, size)
    ab = tf.random.uniform((batch, size, size, 2), -0.5, 0.5)
    loss_fn = losses.for_output(models.describe(name, **config)["output"])
    optimizer = keras.optimizers.Adam(1e-3)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = loss_fn(ab, colour_output(model(feeds, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return images_per_second(train_step, batch, min_seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--min_seconds", type=float, default=5.0)
    args = parser.parse_args()
    figures = {}
    for label in args.models:
        name, config = CONFIGS[label]
        params, forward = forward_speed(name, config, args.batch_size, 224, args.min_seconds)
        train = train_speed(name, config, args.batch_size, 128, args.min_seconds)
        figures[label] = {"model": name, "config": config, "params": params,
                          "backbone": models.describe(name, **config)["backbone"],
                          "forward_img_s_224": round(forward, 2),
                          "train_img_s_128": round(train, 2)}
        keras.backend.clear_session()
    print(json.dumps({"benchmark": "models", "batch_size": args.batch_size,
                      "threads": os.cpu_count(), "models": figures}))


if __name__ == "__main__":
    main()
