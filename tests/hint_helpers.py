"""A hint model as `koala train` makes it (default:tiny with colour hints, a few steps on
real photos), raw and as `koala ship` ships it (the two heads blended, the palette output)
with a LiteRT copy, for tests/test_hints.py and tests/test_app_hints_browser.py."""

import keras
import pytest
import tensorflow as tf

from koala.bundle import keras_bundle
from koala.serving import tflite
from koala.training import config as training_config, loop

PHOTO = "benchmark/kodak24/kodim23.png"  # 768 x 512
TRAIN_STEPS = 30


def tiny_run(workdir, shared_data, hints=True, steps=TRAIN_STEPS):
    """`koala train --experiment default:tiny` (with colour hints) for `steps` steps on the
    Kodak photos; returns the workdir."""
    config = training_config.load_config("default:tiny")
    config.model.kwargs.hints = config.data.hints = config.model.kwargs.propagation = hints
    config.train.steps = steps
    config.eval.every_steps = config.checkpoint.every_steps = steps
    config.optimizer.learning_rate = 3e-3
    config.data.train_photos = str(shared_data / "benchmark" / "kodak24")
    config.data.val_photos = str(shared_data / "photos" / "val")
    keras.backend.clear_session()
    loop.train(config, workdir, strategy=tf.distribute.get_strategy())
    return workdir


@pytest.fixture(scope="session")
def hint_bundle(tmp_path_factory, shared_data):
    """The training run's bundle: effnet_unet(hints=True), both heads."""
    return keras_bundle.load(tiny_run(tmp_path_factory.mktemp("hint_run"), shared_data))


@pytest.fixture(scope="session")
def shipped_hint_bundle(hint_bundle, tmp_path_factory, shared_data):
    """`hint_bundle` as `koala ship` ships a default (heads blended as selected on real
    validation photos, the palette output), plus the model.tflite `koala export --format
    tflite` adds."""
    from koala.data import prior as prior_lib
    from koala.shipping import release, selection

    trained = release.load_trained(str(hint_bundle.path.parent))
    _, photos = release.validation_photos(shared_data / "photos" / "val", 3)
    prior = prior_lib.ab_prior(str(shared_data / "benchmark" / "kodak24"))
    report = selection.select(trained.bundle, photos, prior, [64])
    directory = tmp_path_factory.mktemp("shipped_hint_bundle")
    release.ship(trained, report, prior, str(directory))
    tflite.add_tflite_to_bundle(keras_bundle.load(directory),
                                parity_photos=[shared_data / PHOTO])
    return directory
