"""A hint model as `koala train` makes it (default:tiny with colour hints, a few steps on
real photos), raw and as a shipped bundle is built (the two heads blended, the palette
output, a LiteRT copy), for tests/test_hints.py and tests/test_app_hints_browser.py."""

import keras
import pytest
import tensorflow as tf

from koala.bundle import keras_bundle
from koala.models import effnet_unet
from koala.serving import tflite
from koala.training import config as training_config, loop

PHOTO = "benchmark/kodak24/kodim23.png"  # 768 x 512
TRAIN_STEPS = 30


def tiny_run(workdir, shared_data, hints=True, steps=TRAIN_STEPS):
    """`koala train --experiment default:tiny` (with colour hints) for `steps` steps on the
    Kodak photos; returns the workdir."""
    config = training_config.load_config("default:tiny")
    config.model.kwargs.hints = config.data.hints = hints
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
    """`hint_bundle` as the default is shipped: heads blended, palette, model.tflite."""
    model = effnet_unet.inference_model(hint_bundle.model, effnet_unet.Blend(0.5, 0.38))
    directory = tmp_path_factory.mktemp("shipped_hint_bundle")
    keras_bundle.save(directory, model, {**hint_bundle.meta, "name": "tiny_hints"})
    tflite.add_tflite_to_bundle(keras_bundle.load(directory),
                                parity_photos=[shared_data / PHOTO])
    return directory
