"""A tiny Koala bundle for the colorize / evaluate / video tests (and the benchmark's fallback).

Two convolutions: the output bias pushes ab towards a strong orange so that recombination
meets out-of-gamut colours; optionally fitted for a few steps on real photos so that
colours depend on content. Tests never depend on the shipped default model.
"""

import numpy as np
import pytest

from koala import color
from koala.bundle import keras_bundle as bundle_lib


def seeded_conv(filters, name, seed, activation="tanh", bias=None):
    """The layer the tiny test models are made of: a 3x3 "same" convolution with seeded
    Glorot weights and a constant `bias` (zeros when None)."""
    import keras

    bias_initializer = "zeros" if bias is None else keras.initializers.Constant(bias)
    return keras.layers.Conv2D(filters, 3, padding="same", activation=activation, name=name,
                               kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
                               bias_initializer=bias_initializer)


def tiny_model(bias=(0.35, 0.45)):
    """L [B, H, W, 1] in [-1, 1] -> ab [B, H, W, 2] (tanh) at any H, W."""
    import keras

    lightness = keras.Input([None, None, 1], name="L")
    hidden = seeded_conv(8, "conv1", seed=1, activation="relu")(lightness)
    ab = seeded_conv(2, "ab", seed=2, bias=bias)(hidden)
    return keras.Model({"L": lightness}, ab, name="tiny")


def fit_on_photos(model, photos, size=64, epochs=30):
    """A few quick epochs of plain MSE on (L, ab) of real photos resized to size x size."""
    import cv2

    from koala.image_io import read_image

    rgb = [cv2.resize(read_image(p)[..., :3], (size, size), interpolation=cv2.INTER_AREA)
           for p in photos]
    lab = np.stack([color.rgb_to_lab_cv2(image) for image in rgb])
    model.compile(optimizer="adam", loss="mse")
    model.fit({"L": color.scale_l(lab[..., :1])}, color.scale_ab(lab[..., 1:]),
              batch_size=16, epochs=epochs, verbose=0)
    return model


def save_tiny_bundle(directory, photos=None, size=64):
    """Builds (and, given photos, fits) the tiny model and saves it as a bundle."""
    model = tiny_model()
    if photos:
        fit_on_photos(model, photos, size)
    return bundle_lib.save(directory, model, {"model": "tiny", "size": size,
                                              "output": "regression", "stride": 1})


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """Path of an untrained tiny bundle (import this fixture into a test module to use it)."""
    return save_tiny_bundle(tmp_path_factory.mktemp("tiny_bundle"))


@pytest.fixture(scope="session")
def tiny_colorizer(tiny_bundle):
    from koala.inference.colorizer import Colorizer

    return Colorizer(str(tiny_bundle))
