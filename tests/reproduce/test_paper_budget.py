"""`koala report --budget paper`: every trained comparison at its paper's scale and data.

Each run's planned config, built as the report builds it, names the paper's experiment,
backbone, size and data with three seeds; and every comparison trains a step on that same
path offline, one run per experiment: its PaperScale shrunk to a few real photos at 32 px,
batch 2, the backbones from weights files saved from a random init (the ImageNet downloads'
stand-ins).
"""

import dataclasses
import functools
import json

import numpy as np
import pytest

import koala.models
from koala.reproduce import reproduction, runs
from koala.reproduce.budget import BUDGETS, Context
from koala.reproduce.run import CLAIMS
from training.test_pipelines import random_init_weights

TRAINED = [claim.SPEC for claim in CLAIMS if claim.SPEC.runs]  # 003 reuses 000's models
PAPER = {  # seed: (records source, size, the backbone its models or records use)
    "000": ("tfds:places365_small", 224, "efficientnet_b7"),
    "001": ("tfds:imagenet2012", 224, "inception_resnet_v2"),
    "002": ("tfds:imagenet2012", 176, "none"),
    "004": ("tfds:cifar10", 32, "none"),
}
EXPERIMENTS = {"effnet_head_lite": "effnet_head", "koalarization_lite": "koalarization"}
TINY_SIZE = 32  # the smallest size every model builds at (EfficientNet's stride)


def _context(data, workdir):
    return Context(BUDGETS["paper"], data, workdir, workdir, "figures")


def _backbone(config):
    return koala.models.describe(config.model.name, **config.model.kwargs.to_dict())["backbone"]


@pytest.mark.parametrize("spec", TRAINED, ids=lambda spec: spec.seed)
def test_every_run_is_planned_at_its_papers_scale(spec, tmp_path):
    scale = spec.paper_scale
    source, size, backbone = PAPER[spec.seed]
    assert (scale.source, scale.size) == (source, size)
    planned = reproduction.run_configs(_context(tmp_path, tmp_path), spec, "records", size)
    assert [int(config.train.seed) for _, config in planned] == [
        seed for seed in (0, 1, 2) for _ in spec.runs]
    for run, config in planned:
        assert config.experiment == EXPERIMENTS.get(run.experiment, run.experiment)
        assert config.variant == "" and config.precision == "auto"  # the paper's settings
        assert config.data.size == size and config.data.records == "records"
        assert (config.train.steps, config.train.batch_size) == (scale.steps, scale.batch)
        assert config.model.kwargs.get("weights", "imagenet") == "imagenet"
        if config.data.with_embedding:  # the records' embedding is the paper's backbone
            assert config.data.embedding_backbone == scale.backbone == backbone
    backbones = {_backbone(config) for _, config in planned}
    assert backbone in backbones and (backbone != "none" or backbones == {"none"})


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """backbone -> a weights file saved from its random init, each built once."""
    folder = tmp_path_factory.mktemp("weights")
    return functools.cache(lambda name: random_init_weights(name, folder / f"{name}.weights.h5"))


# EfficientNet-B7 and Inception-ResNet-v2 take ~40 s each to trace for training, so their
# comparisons train under -m slow (as tests/training/test_pipelines.py's runs of them do);
# their planned configs are checked above in every run.
HEAVY_BACKBONES = ("efficientnet_b7", "inception_resnet_v2")


@pytest.mark.parametrize("spec", [
    pytest.param(spec, marks=pytest.mark.slow) if PAPER[spec.seed][2] in HEAVY_BACKBONES
    else spec for spec in TRAINED], ids=lambda spec: spec.seed)
def test_every_run_trains_on_its_paper_path_offline(spec, tmp_path, shared_data, weights_file):
    backbone = PAPER[spec.seed][2]
    listing = runs.sample_list(shared_data / "photos" / "val", 6, tmp_path / "photos.txt")
    weights = weights_file(backbone) if backbone != "none" else "imagenet"
    scale = dataclasses.replace(spec.paper_scale, source=str(listing), size=TINY_SIZE,
                                steps=1, batch=2, images=0, weights=weights)
    tiny = dataclasses.replace(spec, paper_scale=scale)
    context = _context(shared_data, tmp_path)

    directory, size = runs.records(context, tiny.records, tiny.paper_scale)
    settings = json.loads((directory / "manifest.json").read_text())["settings"]
    assert (settings["source"], settings["size"]) == (str(listing), TINY_SIZE)
    assert settings["embedding"] == scale.backbone
    # seed 0 of one run per experiment: the runs of one differ only in the studied change
    first = {}
    for run, config in reproduction.run_configs(context, tiny, directory, size):
        first.setdefault(config.experiment, (run, config))
    for run, config in first.values():
        trained = runs.train_run(context, run.name, config)
        assert _backbone(config) == backbone and config.data.size == TINY_SIZE
        (last,) = runs.learning_curve(trained.workdir)
        assert last["step"] == 1 and np.isfinite(last["loss"])
