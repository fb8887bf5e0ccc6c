"""The report's records, training runs and model outputs on val images.

Records come from seeded random samples of ../shared/data (a list file per set, so that the
sample mixes every sub-folder; `limit` alone would take the alphabetically first ones) and
are built once per budget under the workdir, then reused; the models are measured on
held-out records (`held_out`: photos/val, CIFAR-10's test folder). Every training run of a
comparison shares steps, batch and learning-rate schedule, and each training seed is run
for every method, so the two sides of a comparison differ only in the one override the
paper studies.

Runs resume: <workdir>/runs/<run>/seed<k>/ keeps the planned config (report_config.json);
a finished run whose planned config is unchanged is reused, an unfinished one resumes from
its last checkpoint (koala.training.loop), and one planned differently (the code or the
budget changed) is trained afresh. Each finished run records its training seconds (those of
attempts killed before it finished included), so a report assembled over several sessions
still states what its runs cost.
"""

import copy
import dataclasses
import json
import pathlib
import random
import shutil
import time

import numpy as np
import tensorflow as tf
from absl import logging

from koala.image_io import IMAGE_SUFFIXES
from koala.models import backbones, outputs as model_outputs_lib
from koala.reproduce.budget import SEED
from koala.training import builders, history, loop, records as training_records
from koala.training import config as training_config

CHUNK = 16  # images per forward pass when measuring
EMBEDDING = "efficientnet_lite0"  # precomputed into seed 001's photo records, which fuse it
# files of a run's folder: its planned config, its training time once finished, and the
# attempts so far (a killed attempt's time counts too)
PLANNED, SECONDS, ATTEMPTS = "report_config.json", "report_seconds.json", "report_attempts.json"
CHECKPOINT_EVERY = 1000  # steps at most between checkpoints: a preempted paper run loses few


@dataclasses.dataclass
class TrainedRun:
    """A finished training run of the report."""

    model: object  # keras.Model
    kind: str  # "regression" or "classification"
    seconds: float  # training time, killed attempts included
    workdir: pathlib.Path  # metrics.jsonl holds its learning curve
    reused: bool  # finished before this report started (its seconds were spent then)


def sample_list(folder, count, path, seed=SEED):
    """A seeded random sample of `count` images under `folder` -> a list file at `path`."""
    files = sorted(str(p.resolve()) for p in pathlib.Path(folder).rglob("*")
                   if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{folder}: no images")
    chosen = random.Random(seed).sample(files, min(count, len(files)))
    path.write_text("\n".join(chosen) + "\n")
    return path


def sample_records(context, name, folder, count, size, embedding="", val_fraction=0.1):
    """Builds (once) records of a sample of `folder` at `size`, centre-cropped, 10% val
    (all of it with val_fraction 1: a held-out set), with the `embedding` backbone's vector
    of each photo at the backbone's own input size (as the paper embeds its 299 px input)."""
    from koala.data import writer  # noqa: PLC0415

    embedding_size = backbones.default_size(embedding) if embedding else 0
    # a budget that samples differently gets its own records
    name = f"{name}_{count}x{size}" + (f"_{embedding}_{embedding_size}" if embedding else "")
    directory = context.workdir / "records" / name
    if not (directory / "manifest.json").is_file():
        directory.mkdir(parents=True, exist_ok=True)
        listing = sample_list(folder, count, context.workdir / "records" / f"{name}.txt")
        build_records(directory, writer.Settings(
            source=str(listing), size=size, resize="crop", val_fraction=val_fraction,
            seed=SEED, embedding=embedding, embedding_size=embedding_size))
    return directory


def paper_records(context, scale):
    """Builds (once) the records of a comparison at its paper's scale (`scale`, a
    reproduction.PaperScale): its data, size and resize, its embedding backbone, 10% val.
    tfds downloads what it may (ImageNet's tars must be in tfds' manual folder)."""
    from koala.data import writer  # noqa: PLC0415

    parts = (scale.source.removeprefix("tfds:").replace(":", "_").replace("/", "_"),
             f"{scale.images or 'all'}x{scale.size}", scale.resize, scale.backbone)
    directory = context.workdir / "records" / "_".join(part for part in parts if part)
    if not (directory / "manifest.json").is_file():
        build_records(directory, writer.Settings(
            source=scale.source, size=scale.size, resize=scale.resize, val_fraction=0.1,
            seed=SEED, limit=scale.images, embedding=scale.backbone,
            embedding_weights=scale.weights), tfds_download=True)
    return directory


def build_records(directory, settings, tfds_download=False):
    """Writes the records of `settings` into `directory`; both splits must hold images."""
    from koala.data import sources, writer  # noqa: PLC0415

    source = sources.open_source(settings.source, tfds_download=tfds_download)
    manifest = writer.build(source, directory, settings)
    splits = ("val",) if settings.val_fraction >= 1 else ("train", "val")
    if not all(manifest["counts"][split]["examples"] for split in splits):
        shutil.rmtree(directory)
        raise ValueError(f"{settings.source}: no usable images for the {directory.name} "
                         f"records ({manifest['skip_reasons']})")


def records(context, which, paper_scale=None, size=None, embedding=False, photos=None):
    """(directory, size) of the "cifar10" records or the "photos" ones (every Lab claim's;
    with `embedding`, the Lite0 embedding that seed 001 fuses; at `size`, by default the
    budget's photo_size; `photos` of them, by default the budget's). At paper scale, those
    of the comparison's
    `paper_scale` (reproduction.PaperScale): no comparison shares them, so without one
    there is nothing to build, (None, None)."""
    budget = context.budget
    if budget.at_paper_scale:
        if paper_scale is None:
            return None, None
        return paper_records(context, paper_scale), paper_scale.size
    if which == "cifar10":  # its train folder: the test folder is held out (held_out)
        return sample_records(context, "cifar10_train", context.data / "cifar10" / "train",
                              budget.cifar_images, 32), 32
    size = size or budget.photo_size
    return sample_records(context, "photos", context.data / "photos" / "train",
                          photos or budget.photos, size,
                          embedding=EMBEDDING if embedding else ""), size


def held_out(context, which, size=None, embedding=False):
    """The records every model of a comparison is measured on, all in their val split:
    images no run trained on or was selected on (CIFAR-10's test folder; photos/val, which
    never overlaps photos/train), up to the budget's eval_images, photos at `size` (by
    default the budget's photo_size; with `embedding`, as records()). At paper scale, None: the
    comparison's own records hold out 10% of the paper's data."""
    budget = context.budget
    if budget.at_paper_scale:
        return None
    if which == "cifar10":
        return sample_records(context, "cifar10_test", context.data / "cifar10" / "test",
                              budget.eval_images, 32, val_fraction=1.0)
    return sample_records(context, "photos_val", context.data / "photos" / "val",
                          budget.eval_images, size or budget.photo_size,
                          embedding=EMBEDDING if embedding else "",
                          val_fraction=1.0)


def val_count(directory):
    """How many images the val split of the records `directory` holds."""
    return int(training_records.manifest(str(directory))["counts"]["val"]["examples"])


def measured_on(config, directory):
    """`config` reading the records `directory` (None: its own) for measurement."""
    if directory is None:
        return config
    config = copy.deepcopy(config)
    config.data.records = str(directory)
    return config


def run_config(context, experiment, records_dir, size, steps, seed, with_embedding=False,
               changes=None, paper_scale=None):
    """The ConfigDict of one report run: `experiment` at the budget's variant, on
    `records_dir`, with the budget's schedule and `changes` (dotted keys -> values: the one
    thing a comparison varies). At paper scale the comparison's `paper_scale`
    (reproduction.PaperScale) names the experiment, which keeps its own optimizer, schedule
    and precision (the paper's), and gives the backbones' weights."""
    budget = context.budget.for_comparison(paper_scale)
    changes = dict(changes or {})
    if budget.at_paper_scale:  # the paper's experiment at its own settings (no variant)
        config = training_config.load_config(paper_scale.experiment(experiment))
        if "weights" in config.model.kwargs:  # over the runs' own "imagenet" (seed 000's)
            changes["model.kwargs.weights"] = paper_scale.weights
    else:  # the budget's variant and schedule: the papers' rates are for 10^5 steps
        config = training_config.load_config(f"{experiment}:{budget.variant}")
        config.precision = "float32"
        config.optimizer.learning_rate = budget.learning_rate
        config.schedule.update(name="cosine", warmup_steps=budget.warmup_steps)
    config.data.update(records=str(records_dir), source="", size=size,
                       with_embedding=with_embedding)
    config.train.update(steps=steps, batch_size=budget.batch, seed=seed,
                        steps_per_loop=max(1, min(50, steps)))
    curve_every = max(1, steps // budget.curve_points)
    config.eval.update(every_steps=curve_every, max_batches=budget.curve_batches, images=2)
    config.checkpoint.every_steps = min(curve_every, CHECKPOINT_EVERY)
    training_config.override(config, changes)
    return config


def train_run(context, run, config):
    """Trains (or reuses, or resumes) run folder `run`/seed<k> with `config` -> TrainedRun."""
    import keras  # noqa: PLC0415

    from koala.bundle import keras_bundle  # noqa: PLC0415

    workdir = context.workdir / "runs" / run / f"seed{int(config.train.seed)}"
    planned = config.to_json_best_effort(indent=2, sort_keys=True)
    if (workdir / PLANNED).is_file() and (workdir / PLANNED).read_text() != planned:
        logging.info("report: %s was planned differently; training it afresh", workdir)
        shutil.rmtree(workdir)
    reused = (workdir / SECONDS).is_file()
    context.reused_runs += reused
    if not reused:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / PLANNED).write_text(planned)
        earlier = killed_attempts_seconds(workdir)
        keras.backend.clear_session()
        started = time.perf_counter()
        loop.train(config, workdir, strategy=tf.distribute.get_strategy())
        seconds = earlier + time.perf_counter() - started
        (workdir / SECONDS).write_text(json.dumps({"seconds": seconds}))
        logging.info("report: trained %s in %.0f s", workdir, seconds)
    seconds = json.loads((workdir / SECONDS).read_text())["seconds"]
    return TrainedRun(builders.as_trained(keras_bundle.load(workdir).model),
                      builders.output_kind(config), seconds, workdir, reused)


def killed_attempts_seconds(workdir):
    """Seconds that earlier, killed attempts at this run spent, each from its start to the
    last file it wrote; then records that a new attempt starts now."""
    path = workdir / ATTEMPTS
    spent = 0.0
    if path.is_file():
        attempt = json.loads(path.read_text())
        written = [p.stat().st_mtime for p in workdir.rglob("*")
                   if p.is_file() and p.name not in (ATTEMPTS, PLANNED)]
        spent = attempt["spent"] + max([0.0] + [t - attempt["started"] for t in written])
    path.write_text(json.dumps({"spent": spent, "started": time.time()}))
    return spent


def learning_curve(workdir):
    """The run's val rows of metrics.jsonl (step and every metric the loop logged)."""
    return [row for row in history.read(str(workdir)) if row.get("split") == "val"]


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
