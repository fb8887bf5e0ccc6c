"""Let there be Color! (Iizuka, Simo-Serra, Ishikawa, SIGGRAPH 2016), cited by seeds 001-003.

Four parts (their Fig. 2): a low-level network shared by two paths; a mid-level network on
the full-resolution path; a global network that sees the image resized to 224 x 224 and
ends in a 256-d vector; a fusion layer that tiles that vector over the mid-level features
(the model Deep Koalarization borrowed its fusion from) and a colorization network that
upsamples to the output. An optional head classifies the scene from the global features
(their joint training with Places labels). Every conv is followed by BatchNorm and ReLU as
in the paper; the output uses tanh instead of their sigmoid to match Koala's [-1, 1] ab.
Because the global path resizes in-graph, the full-resolution path takes any H, W
divisible by 8.
"""

import functools

import keras
from keras import layers

from koala.models import blocks
from koala.models.registry import register

LOW_LEVEL = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1))
MID_LEVEL = (512, 256)
GLOBAL_CONVS = ((512, 2), (512, 1), (512, 2), (512, 1))
GLOBAL_DENSE = (1024, 512, 256)
COLORIZATION = (128, "up", 64, 64, "up", 32)  # ints: conv block of that width
STRIDE = 8


@register("iizuka", backbone="none", output="regression")
def build(input_size=None, width=1.0, global_size=224, num_classes=0, upsampling="nearest"):
    """Iizuka et al. 2016: low/mid-level, global (224 px) and fusion nets, optional classifier.

    Args:
      input_size: None (any H, W divisible by 8), an int, or (H, W).
      width: multiplier of every layer width (1.0 is the paper).
      global_size: side of the global path's resized input (224 in the paper; a multiple
        of 32, smaller to fit a CPU).
      num_classes: > 0 adds the classification head, an output named "class_logits".
      upsampling: "nearest" or "bilinear" (TFLite).
    """
    if global_size % 32:
        raise ValueError(f"global_size must be a multiple of 32, not {global_size}")

    luminance = blocks.l_input(input_size, STRIDE)
    scaled = functools.partial(blocks.scaled_width, multiplier=width)
    low_level = [_SharedConvBlock(scaled(filters), stride, f"low{index}")
                 for index, (filters, stride) in enumerate(LOW_LEVEL, start=1)]

    local = luminance
    for block in low_level:
        local = block(local)
    for index, filters in enumerate(MID_LEVEL, start=1):
        local = blocks.conv_block(local, scaled(filters), f"mid{index}")

    scene = layers.Resizing(global_size, global_size, name="global_resize")(luminance)
    for block in low_level:  # the same layers, so the two paths share their weights
        scene = block(scene)
    for index, (filters, stride) in enumerate(GLOBAL_CONVS, start=1):
        scene = blocks.conv_block(scene, scaled(filters), f"global_conv{index}", strides=stride)
    scene = layers.Flatten(name="global_flatten")(scene)
    dense = {}
    for index, units in enumerate(GLOBAL_DENSE, start=1):
        scene = layers.Dense(scaled(units), name=f"global_fc{index}")(scene)
        scene = layers.BatchNormalization(name=f"global_fc{index}_bn")(scene)
        scene = layers.Activation("relu", name=f"global_fc{index}_act")(scene)
        dense[units] = scene

    x = blocks.TileConcat(name="fusion")([local, scene])
    x = blocks.conv_block(x, scaled(256), "fusion_conv", kernel_size=1)
    convs = ups = 0
    for step in COLORIZATION:
        if step == "up":
            ups += 1
            x = blocks.upsample(x, f"color_up{ups}", upsampling)
        else:
            convs += 1
            x = blocks.conv_block(x, scaled(step), f"color_conv{convs}")
    x = layers.Conv2D(2, 3, padding="same", activation="tanh", name="color_output")(x)
    outputs = {"ab": blocks.upsample(x, "ab", upsampling)}

    if num_classes:
        # Their classification network: the global net's 512-d features -> 256 -> classes.
        head = layers.Dense(scaled(256), activation="relu", name="class_fc1")(dense[512])
        outputs["class_logits"] = layers.Dense(num_classes, name="class_logits")(head)
    else:
        outputs = outputs["ab"]
    return keras.Model({"L": luminance}, outputs, name="iizuka")


class _SharedConvBlock:
    """conv + BN + ReLU whose layers are created once and applied to both paths."""

    def __init__(self, filters, stride, name):
        self.layers = (
            layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                          name=f"{name}_conv"),
            layers.BatchNormalization(name=f"{name}_bn"),
            layers.Activation("relu", name=f"{name}_act"),
        )

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x
