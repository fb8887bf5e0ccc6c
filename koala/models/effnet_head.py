"""EfficientNet + upsampling head (Lin & Ferreira, seed 000), after Dahl's residual encoder.

The paper's text, followed literally: the 7x7 top activation of a pretrained EfficientNet
passes a 1x1 conv block; then 5 times: upsample 2x, add the previous (finer) backbone
activation, and a conv block (3x3 conv, BN, ReLU) that "resizes its dimension" to the next
activation's channel count; the output block is a 3x3 conv to 2 channels with tanh. Four
activations (strides 16, 8, 4, 2) are added; the 5th upsampling reaches full resolution
with nothing left to add. The paper gives one width, 7x7x1344 after the top block: the
width of B7's block6a_expand_activation, the stride-16 activation added next. So by
default every block takes the width of the activation it is added to (the additions need
no projection; tests check the 1344 on B7), and the last block has `final_channels`. When `channels`
are set explicitly (smaller heads for a CPU) an activation whose width differs is
projected by a 1x1 conv block first, as Dahl's encoder does with its hypercolumn layers.
"""

import keras
from keras import layers

from koala.models import backbones, blocks
from koala.models.registry import register

LEVELS = 5  # 2x upsamplings from stride 32 to full resolution
STRIDE = 2 ** LEVELS


@register("effnet_head", backbone=lambda config: config.get("backbone", "efficientnet_b7"),
          output="regression")
def build(input_size=None, backbone="efficientnet_b7", weights="imagenet", trainable=False,
          channels=None, final_channels=32, upsampling="nearest"):
    """EfficientNet (B7 as the paper) with a 5-level upsample-and-add head (seed 000).

    Args:
      input_size: None (any H, W divisible by 32), an int, or (H, W).
      backbone: a koala.models.backbones name with 5 feature maps at strides 2..32
        (efficientnet_b7 as the paper; efficientnet_lite0 offline with real weights).
      weights: the backbone's weights ("imagenet", a local file, or None for random).
      trainable: fine-tune the backbone (the paper's is pretrained; frozen by default).
      channels: widths of the top 1x1 block and of the blocks after upsamplings 1-4
        (5 ints); None takes the widths of the activations each feeds (strides 16, 8, 4,
        2), then stride 2's again.
      final_channels: width of the block at full resolution.
      upsampling: "nearest" or "bilinear" (TFLite).
    """
    luminance = blocks.l_input(input_size, STRIDE)
    encoder, feature_names, preprocess = backbones.backbone(
        backbone, blocks.normalise_size(input_size), weights=weights, trainable=trainable)
    features = encoder(preprocess(luminance))
    *skips, top = [features[name] for name in feature_names]  # strides 2, 4, 8, 16; 32
    if channels is None:
        widths = [skip.shape[-1] for skip in reversed(skips)]  # strides 16, 8, 4, 2
        channels = widths + widths[-1:] + [final_channels]  # stride 2 keeps its width
    else:
        channels = list(channels) + [final_channels]

    x = blocks.conv_block(top, channels[0], "head_top", kernel_size=1)
    for level in range(1, LEVELS + 1):
        x = blocks.upsample(x, f"head_up{level}", upsampling)
        if level < LEVELS:
            skip = skips[-level]
            if skip.shape[-1] != x.shape[-1]:
                skip = blocks.conv_block(skip, x.shape[-1], f"head_skip{level}", kernel_size=1)
            x = layers.Add(name=f"head_add{level}")([x, skip])
        x = blocks.conv_block(x, channels[level], f"head_block{level}")
    ab = layers.Conv2D(2, 3, padding="same", activation="tanh", name="ab")(x)
    return keras.Model({"L": luminance}, ab, name="effnet_head")
