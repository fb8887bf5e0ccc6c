"""Trains the shipped default model (`make default-model`) from ../shared/data.

    python data_prep/train_default_model.py --data ../shared/data --workdir runs/default

Photos are read straight from the folders (no records) so that every step sees a fresh
random crop at a random scale: with 8,349 photos and ~20 epochs, augmentation matters more
than the decode cost (1,900 img/s here, far above the ~40 img/s the model trains at).
Killed runs resume from the last checkpoint. The blend of the two heads is selected
afterwards on the validation photos by data_prep/select_default_model.py.
"""

import argparse
import json
import pathlib
import time

import numpy as np
import tensorflow as tf
from absl import logging

from koala import color
from koala.models import effnet_unet

FINETUNE_PREFIXES = ("block7", "top")  # the last stage and head conv of EfficientNet-Lite
BACKBONE_LR_SCALE = 0.1


def list_photos(folder):
    paths = sorted(str(p) for p in pathlib.Path(folder).rglob("*") if p.suffix.lower()
                   in (".jpg", ".jpeg", ".png"))
    if not paths:
        raise FileNotFoundError(f"{folder}: no photos found")
    return paths


def _decode(path, short_side):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = short_side / tf.reduce_min(shape)
    target = tf.cast(tf.round(shape * scale), tf.int32)
    return tf.cast(tf.image.resize(image, target, antialias=True), tf.uint8)


def _to_lab_pair(rgb_uint8):
    lab = color.rgb_to_lab(tf.cast(rgb_uint8, tf.float32) / 255.0)
    return color.scale_l(lab[..., :1]), color.scale_ab(lab[..., 1:])


def train_dataset(paths, size, batch_size, seed=0):
    """Random-scale square crops, flips, Lab in [-1, 1]; decoded photos cached in memory."""
    def crop(image):
        short = tf.cast(tf.reduce_min(tf.shape(image)[:2]), tf.float32)
        side = tf.cast(short * tf.random.uniform([], 0.55, 1.0), tf.int32)
        patch = tf.image.random_crop(image, tf.stack([side, side, 3]))
        patch = tf.image.resize(patch, (size, size), antialias=True)
        patch = tf.image.random_flip_left_right(patch)
        return tf.cast(tf.round(patch), tf.uint8)

    ds = tf.data.Dataset.from_tensor_slices(paths)
    ds = ds.map(lambda p: _decode(p, int(size * 1.25)), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.cache().shuffle(len(paths), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.map(crop, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size, drop_remainder=True)
    return ds.map(_to_lab_pair, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def val_dataset(paths, size, batch_size):
    """Centre crops of the validation photos (a fixed set: comparable across steps)."""
    def centre(image):
        return tf.cast(tf.round(tf.image.resize(
            tf.image.resize_with_crop_or_pad(image, size, size), (size, size))), tf.uint8)

    ds = tf.data.Dataset.from_tensor_slices(paths).map(lambda p: centre(_decode(p, size)))
    return ds.batch(batch_size).map(_to_lab_pair).cache()


def losses(ab_true, outputs, logit_weight):
    """Huber on ab in Lab units (delta 10, /100 to sit near CE's scale) + bin cross-entropy."""
    error = color.unscale_ab(outputs["ab"] - ab_true)
    regression = tf.reduce_mean(tf.keras.losses.huber(tf.zeros_like(error), error, delta=10.0))
    regression = regression / 100.0
    logits = outputs["ab_logits"]
    stride = ab_true.shape[1] // logits.shape[1]
    ab_low = tf.nn.avg_pool2d(color.unscale_ab(ab_true), stride, stride, "VALID")
    target = color.soft_encode(ab_low)
    cross_entropy = -tf.reduce_mean(tf.reduce_sum(target * tf.nn.log_softmax(logits), -1))
    return regression + logit_weight * cross_entropy, regression, cross_entropy


def set_finetuning(model):
    """Freeze the backbone except its last stages' convolutions; BN stays in inference mode."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model) or hasattr(layer, "layers"):
            for inner in layer.layers:
                inner.trainable = (inner.name.startswith(FINETUNE_PREFIXES)
                                   and "bn" not in inner.name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--workdir", default="runs/default")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--steps", type=int, default=6500)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--logit-weight", type=float, default=1.0)
    parser.add_argument("--finetune", action="store_true", help="train the last backbone stages")
    parser.add_argument("--eval-every", type=int, default=500)
    args = parser.parse_args()
    logging.set_verbosity(logging.INFO)
    workdir = pathlib.Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "args.json").write_text(json.dumps(vars(args), indent=2))

    data = pathlib.Path(args.data)
    train = iter(train_dataset(list_photos(data / "photos/train"), args.size, args.batch))
    val = val_dataset(list_photos(data / "photos/val")[::3], args.size, 32)

    model = effnet_unet.build(weights="imagenet")
    if args.finetune:
        set_finetuning(model)
    backbone_vars = {id(v) for layer in model.layers if hasattr(layer, "layers")
                     for v in layer.trainable_variables}
    schedule = tf.keras.optimizers.schedules.CosineDecay(
        0.0, args.steps, alpha=0.02, warmup_target=args.lr, warmup_steps=300)
    optimizer = tf.keras.optimizers.Adam(schedule)
    step = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(checkpoint, workdir / "checkpoints", max_to_keep=3)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint)
        logging.info("resumed from %s at step %d", manager.latest_checkpoint, int(step))

    @tf.function
    def train_step(lightness, ab):
        with tf.GradientTape() as tape:
            outputs = model({"L": lightness}, training=True)
            total, regression, cross_entropy = losses(ab, outputs, args.logit_weight)
        variables = model.trainable_variables
        grads = tape.gradient(total, variables)
        grads = [g * BACKBONE_LR_SCALE if id(v) in backbone_vars else g
                 for g, v in zip(grads, variables)]
        optimizer.apply_gradients(zip(grads, variables))
        return total, regression, cross_entropy

    @tf.function
    def eval_step(lightness, ab):
        outputs = model({"L": lightness}, training=False)
        _, regression, cross_entropy = losses(ab, outputs, args.logit_weight)
        mse = tf.reduce_mean(tf.square(color.unscale_ab(outputs["ab"] - ab)))
        return regression, cross_entropy, mse

    log = open(workdir / "log.jsonl", "a")
    start, seen, window = time.time(), 0, []
    while int(step) < args.steps:
        lightness, ab = next(train)
        total, regression, cross_entropy = train_step(lightness, ab)
        if not np.isfinite(float(total)):
            raise FloatingPointError(f"loss is {float(total)} at step {int(step)}; "
                                     f"last good checkpoint: {manager.latest_checkpoint}")
        step.assign_add(1)
        seen += args.batch
        window.append([float(regression), float(cross_entropy)])
        current = int(step)
        if current % 50 == 0:
            rate = seen / (time.time() - start)
            reg, ce = np.mean(window, 0)
            logging.info("step %d reg %.4f ce %.4f %.1f img/s", current, reg, ce, rate)
            log.write(json.dumps({"step": current, "reg": reg, "ce": ce, "img_s": rate,
                                  "time": time.time()}) + "\n")
            log.flush()
            window = []
        if current % args.eval_every == 0 or current == args.steps:
            figures = np.mean([[float(x) for x in eval_step(l, a)] for l, a in val], 0)
            log.write(json.dumps({"step": current, "val_reg": figures[0], "val_ce": figures[1],
                                  "val_ab_mse": figures[2]}) + "\n")
            log.flush()
            logging.info("step %d val reg %.4f ce %.4f ab-mse %.2f", current, *figures)
            manager.save(checkpoint_number=current)
    model.save(workdir / "final.keras")


if __name__ == "__main__":
    main()
