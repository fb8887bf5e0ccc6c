"""The report's records, training runs and model outputs on val images.

Records come from seeded random samples of ../shared/data (a list file per set, so that the
sample mixes every sub-folder; `limit` alone would take the alphabetically first ones) and
are built once per budget under the workdir, then reused. Every training run shares seed,
steps, batch and learning rate, so the two sides of a comparison differ only in the one
override the paper studies.
"""

import pathlib
import random
import shutil
import time

import numpy as np
import tensorflow as tf
from absl import logging

from koala.image_io import IMAGE_SUFFIXES
from koala.models import outputs as model_outputs_lib
from koala.reproduce.budget import SEED
from koala.training import builders, loop, records as training_records
from koala.training import config as training_config

CHUNK = 16  # images per forward pass when measuring
# Papers' rates such as Zhang's 3e-5 are for 10^5 steps; a few hundred steps need 1e-3 to
# move at all.
LEARNING_RATE = 1e-3


def sample_list(folder, count, path, seed=SEED):
    """A seeded random sample of `count` images under `folder` -> a list file at `path`."""
    files = sorted(str(p.resolve()) for p in pathlib.Path(folder).rglob("*")
                   if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{folder}: no images")
    chosen = random.Random(seed).sample(files, min(count, len(files)))
    path.write_text("\n".join(chosen) + "\n")
    return path


def sample_records(context, name, folder, count, size, embedding=""):
    """Builds (once) records of a sample of `folder` at `size`, centre-cropped, 10% val."""
    from koala.data import sources, writer  # noqa: PLC0415

    name = f"{name}_{count}x{size}"  # a budget that samples differently gets its own records
    directory = context.workdir / "records" / name
    if (directory / "manifest.json").is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    listing = sample_list(folder, count, context.workdir / "records" / f"{name}.txt")
    settings = writer.Settings(source=str(listing), size=size, resize="crop", val_fraction=0.1,
                               seed=SEED, embedding=embedding)
    manifest = writer.build(sources.open_source(str(listing)), directory, settings)
    if not manifest["counts"]["train"]["examples"] or not manifest["counts"]["val"]["examples"]:
        shutil.rmtree(directory)
        raise ValueError(f"{folder}: no usable images for the {name} records "
                         f"({manifest['skip_reasons']})")
    return directory


def records(context, which):
    """(directory, size) of the "cifar10" records or the "photos" ones (every Lab claim's,
    with the Lite0 embedding that seed 001 fuses)."""
    budget = context.budget
    if which == "cifar10":
        return sample_records(context, "cifar10", context.data / "cifar10",
                              budget.cifar_images, 32), 32
    return sample_records(context, "photos", context.data / "photos" / "train", budget.photos,
                          budget.photo_size, embedding="efficientnet_lite0"), budget.photo_size


def train_run(context, run, experiment, records_dir, size, steps, with_embedding=False,
              changes=None):
    """Trains `experiment` (its cpu/tiny variant) on `records_dir`; returns (model, config,
    kind). `changes` maps dotted config keys to values (the one thing a comparison varies).
    """
    import keras  # noqa: PLC0415

    from koala.bundle import keras_bundle  # noqa: PLC0415

    budget = context.budget
    variant = "tiny" if budget.name == "tiny" else "cpu"
    config = training_config.load_config(f"{experiment}:{variant}")
    config.data.update(records=str(records_dir), source="", size=size,
                       with_embedding=with_embedding)
    config.train.update(steps=steps, batch_size=budget.batch, seed=SEED,
                        steps_per_loop=max(1, min(50, steps)))
    config.eval.update(every_steps=steps, max_batches=1, images=2)
    config.checkpoint.every_steps = steps
    config.precision = "float32"
    config.optimizer.learning_rate = LEARNING_RATE
    training_config.override(config, changes or {})
    workdir = context.workdir / "runs" / run
    finished = (workdir / "bundle" / "koala.json").is_file()
    if not (context.reuse_runs and finished):
        shutil.rmtree(workdir, ignore_errors=True)  # fresh: the seed decides the result
        keras.backend.clear_session()
        started = time.perf_counter()
        loop.train(config, workdir, strategy=tf.distribute.get_strategy())
        logging.info("report: trained %s in %.0f s", run, time.perf_counter() - started)
    return keras_bundle.load(workdir).model, config, builders.output_kind(config)


def val_images(config, limit):
    """(features {name: array}, target array) of up to `limit` val images of `config`."""
    features, targets = {}, []
    for batch_features, batch_target in training_records.make_dataset(config, "val", 32):
        for name, value in batch_features.items():
            features.setdefault(name, []).append(value.numpy())
        targets.append(batch_target.numpy())
        if sum(len(t) for t in targets) >= limit:
            break
    if not targets:
        raise ValueError(f"{config.data.records}: the val split is empty")
    return ({k: np.concatenate(v)[:limit] for k, v in features.items()},
            np.concatenate(targets)[:limit])


def in_chunks(function, *arrays, size=CHUNK):
    """function(*arrays) evaluated CHUNK images at a time and concatenated: a whole val set
    in one call holds every layer's activations for all images (the 224 px classifier on
    200 images needs > 20 GB)."""
    parts = [np.asarray(function(*(a[i:i + size] for a in arrays)))
             for i in range(0, len(arrays[0]), size)]
    return np.concatenate(parts)


def model_outputs(model, features):
    """The model's raw outputs on the inputs it declares (records may hold more)."""
    names = sorted(tensor.name.split(":")[0] for tensor in model.inputs)
    return in_chunks(lambda *inputs: model(dict(zip(names, inputs)), training=False),
                     *(features[name] for name in names))


def decode(outputs, kind, size, temperature=None):
    """Raw outputs -> target in model units; `temperature` overrides the annealed mean's."""
    return np.asarray(model_outputs_lib.to_target(outputs, kind, size, temperature))
