"""Colorful Image Colorization (Zhang, Isola, Efros, ECCV 2016), summarised by seed 002.

A VGG-style stack of 8 conv blocks: blocks 1-3 halve the resolution, 4-7 keep H/8 with
dilation 2 in blocks 5 and 6 to widen the receptive field, block 8 upsamples once to H/4
and a 1x1 conv predicts logits over the Q in-gamut ab bins of koala.color.ab_bins().
As in the released model, each block is (conv + ReLU) x n followed by one BatchNorm
(block 8 has none). Colours come from `decode`: annealed mean (T = 0.38), then bilinear
upsampling of ab to the input size.
"""

import functools

import keras
from keras import layers

from koala import color
from koala.models import blocks
from koala.models.registry import register

# (block, widths, stride of the block's last conv, dilation); widths before the multiplier.
BLOCKS = (
    (1, (64, 64), 2, 1),
    (2, (128, 128), 2, 1),
    (3, (256, 256, 256), 2, 1),
    (4, (512, 512, 512), 1, 1),
    (5, (512, 512, 512), 1, 2),
    (6, (512, 512, 512), 1, 2),
    (7, (512, 512, 512), 1, 1),
)
STRIDE = 8  # H and W must be multiples of it; the logits come out at H/4 x W/4


@register("zhang_eccv16", backbone="none", output="classification")
def build(input_size=None, width=1.0, num_bins=None):
    """Zhang et al. 2016: dilated VGG predicting logits over Q ab bins at 1/4 resolution.

    Args:
      input_size: None (any H, W divisible by 8), an int, or (H, W).
      width: multiplier of every conv width (1.0 is the paper; 0.125 fits a CPU).
      num_bins: Q; defaults to len(koala.color.ab_bins()).
    """
    num_bins = num_bins or len(color.ab_bins())
    luminance = blocks.l_input(input_size, STRIDE)
    scaled = functools.partial(blocks.scaled_width, multiplier=width)

    x = luminance
    for block, widths, stride, dilation in BLOCKS:
        for index, filters in enumerate(widths, start=1):
            last = index == len(widths)
            x = layers.Conv2D(scaled(filters), 3, strides=stride if last else 1,
                              dilation_rate=dilation, padding="same", activation="relu",
                              name=f"conv{block}_{index}")(x)
        x = layers.BatchNormalization(name=f"conv{block}_bn")(x)

    x = layers.Conv2DTranspose(scaled(256), 4, strides=2, padding="same", activation="relu",
                               name="conv8_1")(x)
    for index in (2, 3):
        x = layers.Conv2D(scaled(256), 3, padding="same", activation="relu",
                          name=f"conv8_{index}")(x)
    logits = layers.Conv2D(num_bins, 1, name="ab_logits")(x)
    return keras.Model({"L": luminance}, logits, name="zhang_eccv16")

