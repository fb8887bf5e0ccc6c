"""Layers and blocks that several Koala models share (so no model keeps a private twin).

Custom layers are registered with Keras serialization: bundles save `model.keras`, and a
Lambda layer would not load back under Keras 3's safe mode.
"""

import keras
from keras import layers, ops


def l_input(input_size=None, stride=1):
    """The "L" input ([-1, 1], one channel) at `input_size`: None, an int, or (H, W).

    A model of total stride `stride` needs sides divisible by it; say so at build time
    rather than as a shape mismatch deep inside the graph.
    """
    height, width = normalise_size(input_size)
    for side in (height, width):
        if side is not None and side % stride:
            raise ValueError(f"input size {input_size} is not divisible by the model's "
                             f"stride {stride}")
    return keras.Input(shape=(height, width, 1), name="L")


def scaled_width(filters, multiplier):
    """A layer width times `multiplier` (CPU-sized variants), at least 8."""
    return max(8, int(round(filters * multiplier)))


def normalise_size(input_size):
    """None -> (None, None) (any size), int -> (s, s), (H, W) unchanged."""
    if input_size is None:
        return None, None
    if isinstance(input_size, int):
        return input_size, input_size
    height, width = input_size
    return height, width


def conv_block(x, filters, name, kernel_size=3, strides=1, dilation_rate=1,
               batch_norm=True, activation="relu"):
    """3x3 (by default) 'same' conv [+ BN] + activation; layers named NAME_conv/_bn/_act."""
    x = layers.Conv2D(filters, kernel_size, strides=strides, dilation_rate=dilation_rate,
                      padding="same", use_bias=not batch_norm, name=f"{name}_conv")(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation(activation, name=f"{name}_act")(x)


def upsample(x, name, interpolation="nearest"):
    """2x spatial upsampling; "bilinear" is the TFLite-friendly choice (nearest needs Flex ops)."""
    if interpolation not in ("nearest", "bilinear"):
        raise ValueError(f"upsampling must be 'nearest' or 'bilinear', not {interpolation!r}")
    return layers.UpSampling2D(2, interpolation=interpolation, name=name)(x)


@keras.saving.register_keras_serializable(package="koala")
class TileConcat(layers.Layer):
    """Fusion of Iizuka et al. / Deep Koalarization: tile a vector [B, D] over every position
    of a feature map [B, h, w, C] and concatenate along depth -> [B, h, w, C + D].

    Tiling (rather than a fixed-size dense layer) keeps the model fully convolutional.
    """

    def call(self, inputs):
        features, vector = inputs
        shape = ops.shape(features)
        tiled = ops.broadcast_to(vector[:, None, None, :],
                                 (shape[0], shape[1], shape[2], ops.shape(vector)[-1]))
        return ops.concatenate([features, ops.cast(tiled, features.dtype)], axis=-1)

    def compute_output_shape(self, input_shapes):
        features, vector = input_shapes
        depth = None if features[-1] is None or vector[-1] is None else features[-1] + vector[-1]
        return (*features[:-1], depth)
