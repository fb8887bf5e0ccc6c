"""Deep Koalarization (Baldassarre et al., seed 001): encoder + global-embedding fusion + decoder.

Exactly Table 1 of the paper. The encoder maps H x W gray to H/8 x W/8 x 256 (8 3x3 convs,
stride 2 at the 1st, 3rd and 5th); the fusion tiles the embedding of a classifier
(Inception-ResNet-v2's 1001 logits before the softmax in the paper) over H/8 x W/8,
concatenates it and mixes with 256 1x1 kernels; the decoder upsamples 3 times back to
H x W x 2. ReLU everywhere, tanh on the output. Convolutions keep their biases and there is
no batch normalisation, as in Table 1 (tests/test_models.py recomputes the parameter count).
"""

import keras
from keras import layers

from koala.models import backbones, blocks
from koala.models.registry import register

ENCODER = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 1), (256, 1))
DECODER = (128, "up", 64, 64, "up", 32, "output", "up")  # ints: 3x3 conv + ReLU of that width
EMBEDDING_SOURCES = ("input", "backbone", "none")
STRIDE = 8


def _backbone_name(config):
    """The backbone koala reports for a config: none when the fusion is dropped."""
    if config.get("embedding_source") == "none":
        return "none"
    return config.get("backbone", "inception_resnet_v2")


@register("koalarization", backbone=_backbone_name, output="regression")
def build(input_size=None, embedding_source="input", embedding_dim=1000,
          backbone="inception_resnet_v2", weights="imagenet", upsampling="nearest"):
    """Deep Koalarization: Table 1 encoder, embedding fusion, decoder (seed 001).

    Args:
      input_size: None (any H, W divisible by 8), an int, or (H, W).
      embedding_source: "input" (precomputed embedding [embedding_dim] read from the records,
        an input named "embedding"), "backbone" (computed in-graph from the L input by the
        frozen classifier `backbone`), or "none" (no fusion: the ablation).
      embedding_dim: D of the precomputed embedding: 1000 for keras' Inception-ResNet-v2
        logits (the paper's TF-slim model had 1001, with a background class), 1280 for
        efficientnet_lite0's pooled features; the records manifest says which.
      backbone: name known to koala.models.backbones (inception_resnet_v2 as the paper,
        efficientnet_lite0 offline). Used only when embedding_source="backbone".
      weights: the backbone's weights ("imagenet", a local file, or None for random). With
        "input" the model has no backbone; experiments keep the records' backbone weights
        under this name (koala.training builds the records and the bundle's backbone with them).
      upsampling: "nearest" as the paper, or "bilinear" (TFLite).
    """
    if embedding_source not in EMBEDDING_SOURCES:
        raise ValueError(f"embedding_source must be one of {EMBEDDING_SOURCES}, "
                         f"not {embedding_source!r}")
    luminance = blocks.l_input(input_size, STRIDE)
    inputs = {"L": luminance}

    x = luminance
    for index, (filters, stride) in enumerate(ENCODER, start=1):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", activation="relu",
                          name=f"encoder_conv{index}")(x)

    if embedding_source == "input":
        inputs["embedding"] = keras.Input(shape=(embedding_dim,), name="embedding")
        x = blocks.TileConcat(name="fusion")([x, inputs["embedding"]])
    elif embedding_source == "backbone":
        x = blocks.TileConcat(name="fusion")([x, _embed(luminance, backbone, weights)])
    x = layers.Conv2D(256, 1, activation="relu", name="fusion_conv")(x)

    convs = ups = 0
    for step in DECODER:
        if step == "up":
            ups += 1
            x = blocks.upsample(x, f"decoder_up{ups}", upsampling)
        elif step == "output":
            x = layers.Conv2D(2, 3, padding="same", activation="tanh", name="decoder_output")(x)
        else:
            convs += 1
            x = layers.Conv2D(step, 3, padding="same", activation="relu",
                              name=f"decoder_conv{convs}")(x)
    ab = layers.Identity(name="ab")(x)
    return keras.Model(inputs, ab, name="koalarization")


def _embed(luminance, backbone, weights):
    """The global embedding of `luminance` by a frozen classifier: gray stacked x3 (Fig. 2),
    resized to the classifier's own input size (299 for Inception), logits or pooled top."""
    return backbones.embedding(backbone, weights=weights, from_l=True)(luminance)
