"""The input pipelines an experiment trains on, by name (config.data.pipeline).

A pipeline registers itself with one decorator line beside its dataset function:

    @register("photo_crops", training_data=lambda config: config.data.train_photos)
    def photo_crops_dataset_fn(config, start_step=0): ...

- the decorated function builds the experiment's dataset_fn: (split, global_batch,
  input_context=None) -> tf.data of (features, target) batches, per-replica batches under an
  input context, "train" endless; `start_step` is the step a resumed run starts at;
- `prepare(config)` (optional) runs before the model is built and may fill in the config
  (the records pipeline builds its records on first use and reads their embedding size);
- `training_data(config)` names the training data, whose ab prior (koala.data.prior) the
  rebalanced losses weigh by;
- `fit(config)` (optional) is how inference should fit a photo to the working size, as the
  pipeline trained ("pad" or "aspect", the bundle's "fit"; None: the default, "aspect").

Adding a pipeline is one entry here; the loop, the losses and the bundle read no pipeline
names.
"""

import dataclasses
from typing import Callable, Optional

from koala.data import prior as prior_lib
from koala.training import records
from koala.training.config import ConfigError
from koala.training.registry import Registry


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """A registered input pipeline: what the module docstring lists."""

    dataset_fn: Callable
    training_data: Callable
    prepare: Optional[Callable] = None
    fit: Optional[Callable] = None


_PIPELINES = Registry("data.pipeline")


def register(name, *, training_data, prepare=None, fit=None):
    """Decorator registering `dataset_fn(config, start_step=0)` as pipeline `name`."""
    return _PIPELINES.decorator(name, lambda fn: Pipeline(fn, training_data, prepare, fit))


def names():
    """Registered pipeline names, sorted."""
    return _PIPELINES.names()


def pipeline(config):
    """The Pipeline of config.data.pipeline ("records" when the config has none)."""
    return _PIPELINES.get(config.data.get("pipeline", "records"))


def prepare(config):
    """Readies the experiment's data before its model is built (see the module docstring)."""
    ready = pipeline(config).prepare
    if ready is not None:
        ready(config)


def dataset_fn(config, start_step=0):
    """(split, global batch, input context) -> batches of the experiment's pipeline."""
    return pipeline(config).dataset_fn(config, start_step)


def fit(config):
    """The bundle's "fit" for what the experiment trains on, or None (see the docstring)."""
    fit_of = pipeline(config).fit
    return None if fit_of is None else fit_of(config)


def ab_prior(config):
    """The smoothed ab prior of the experiment's training data (koala.data.prior)."""
    source = pipeline(config).training_data(config)
    try:
        return prior_lib.ab_prior(source)
    except (ValueError, FileNotFoundError) as error:
        raise ConfigError(str(error)) from None


def _prepare_records(config):
    """Builds the records on first use; a model reading their embedding learns its size."""
    config.data.records = records.ensure_records(config)
    if config.data.with_embedding:
        config.model.kwargs.embedding_dim = records.recorded_embedding_dim(config.data.records)


def _records_fit(config):
    """Records written with resize "pad" (the writer's default, Deep Koalarization's) train
    on white-padded squares, so inference pads the same way."""
    if not config.data.records:
        return None
    resize = records.manifest(config.data.records).get("settings", {}).get("resize")
    if not resize:
        return None
    return "pad" if resize == "pad" else "aspect"


@register("records", training_data=records.records_dir, prepare=_prepare_records,
          fit=_records_fit)
def records_dataset_fn(config, start_step=0):
    """koala records, read in order from `start_step` on (koala.data.pipeline): a resumed
    run reads the batches an uninterrupted one would."""
    config.data.records = records.ensure_records(config)
    return lambda split, batch, context=None: records.make_dataset(config, split, batch, context,
                                                                   start_step)


@register("photo_crops", training_data=lambda config: config.data.train_photos)
def photo_crops_dataset_fn(config, start_step=0):
    """Random-scale crops of data.train_photos, centre crops of every data.val_every-th of
    data.val_photos (koala.data.photo_crops); with data.hints, simulated colour hints as a
    second input. Resuming starts a fresh random stream."""
    from koala.data import photo_crops

    hints = bool(config.data.get("hints", False))

    def from_photos(split, batch, context=None):
        if split == "train":
            return photo_crops.train_dataset(config.data.train_photos, int(config.data.size),
                                             batch, int(config.train.seed), context, hints=hints)
        return photo_crops.val_dataset(config.data.val_photos, int(config.data.size), batch,
                                       int(config.data.get("val_every", 1)), hints=hints)

    return from_photos
