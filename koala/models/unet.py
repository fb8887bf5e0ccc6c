"""U-Net / ColorUNet for small images (Sun & Shen, seed 004; CIFAR-10 at 32 x 32).

A U-Net (Ronneberger et al. 2015) in the lightweight form of ColorUNet (Billaut et al.
2018): `depth` levels of two conv blocks, max-pooling down, transposed-conv up, skip
concatenations. Two heads as the seed compares them:
  - "regression": 2 channels, tanh, scaled chrominance (U, V or a, b) in [-1, 1], MSE;
  - "classification": 20 bins per channel, logits [B, H, W, 2, 20], cross-entropy per
    channel (koala.training.losses.binned_cross_entropy). `to_bins` / `from_bins` convert.
The seed predicts YUV; the model only sees scaled channels, so a and b work the same.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from koala.models import blocks
from koala.models.registry import register

HEADS = ("regression", "classification")
NUM_BINS = 20  # per channel, seed 004
VALUE_RANGE = (-1.0, 1.0)


def _output_kind(config):
    return "binned" if config.get("head") == "classification" else "regression"


@register("unet", backbone="none", output=_output_kind)
def build(input_size=None, head="regression", depth=3, base_width=32, num_bins=NUM_BINS):
    """U-Net for 32x32 colorization with a regression or a 20-bins-per-channel head (seed 004).

    Args:
      input_size: None (any H, W divisible by 2**depth), an int, or (H, W).
      head: "regression" (output "ab", [B, H, W, 2]) or "classification"
        (output "ab_logits", [B, H, W, 2, num_bins]).
      depth: number of 2x downsamplings (3 takes 32 x 32 to a 4 x 4 bottleneck).
      base_width: filters at full resolution, doubled at every level.
      num_bins: bins per channel for the classification head.
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, not {head!r}")
    luminance = blocks.l_input(input_size, 2 ** depth)

    x, skips = luminance, []
    for level in range(depth):
        x = _double_conv(x, base_width * 2 ** level, f"down{level + 1}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"down{level + 1}_pool")(x)
    x = _double_conv(x, base_width * 2 ** depth, "bottleneck")
    for level in reversed(range(depth)):
        filters = base_width * 2 ** level
        x = layers.Conv2DTranspose(filters, 2, strides=2, name=f"up{level + 1}_deconv")(x)
        x = layers.Concatenate(name=f"up{level + 1}_skip")([x, skips[level]])
        x = _double_conv(x, filters, f"up{level + 1}")

    if head == "regression":
        output = layers.Conv2D(2, 1, activation="tanh", name="ab")(x)
    else:
        x = layers.Conv2D(2 * num_bins, 1, name="bin_logits")(x)
        output = SplitChannels(num_bins, name="ab_logits")(x)
    return keras.Model({"L": luminance}, output, name=f"unet_{head}")


def _double_conv(x, filters, name):
    x = blocks.conv_block(x, filters, f"{name}_a")
    return blocks.conv_block(x, filters, f"{name}_b")


@keras.saving.register_keras_serializable(package="koala")
class SplitChannels(layers.Layer):
    """[B, H, W, 2 * bins] -> [B, H, W, 2, bins] (dynamic H, W, unlike layers.Reshape)."""

    def __init__(self, num_bins, **kwargs):
        super().__init__(**kwargs)
        self.num_bins = num_bins

    def call(self, x):
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], shape[1], shape[2], 2, self.num_bins))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], 2, self.num_bins)

    def get_config(self):
        return {**super().get_config(), "num_bins": self.num_bins}


def bin_centres(num_bins=NUM_BINS, value_range=VALUE_RANGE):
    """Centres [num_bins] of equal-width bins over `value_range`."""
    low, high = value_range
    edges = np.linspace(low, high, num_bins + 1, dtype=np.float32)
    return (edges[:-1] + edges[1:]) / 2


def to_bins(values, num_bins=NUM_BINS, value_range=VALUE_RANGE):
    """Channel values [...] -> int32 bin indices [...]; values outside the range clip."""
    low, high = value_range
    values = tf.convert_to_tensor(values, tf.float32)
    index = tf.floor((values - low) / (high - low) * num_bins)
    return tf.cast(tf.clip_by_value(index, 0, num_bins - 1), tf.int32)


def from_bins(logits, value_range=VALUE_RANGE, temperature=1.0):
    """Logits [..., num_bins] -> values [...]: the mean of the bin centres under
    softmax(logits / temperature); temperature -> 0 approaches the most likely bin."""
    logits = tf.convert_to_tensor(logits, tf.float32)
    centres = tf.constant(bin_centres(logits.shape[-1], value_range))
    return tf.tensordot(tf.nn.softmax(logits / temperature, axis=-1), centres, axes=1)
