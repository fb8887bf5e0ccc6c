"""A bundle's model as a TFLite flatbuffer (built-in ops only), for phones and LiteRT, and the
shipped model's LiteRT copy converted once on first use.

Both `koala colorize` (koala.inference.runtime, on first use) and `koala export --format tflite`
(koala.serving.tflite, which adds parity figures and writes files) convert here.
"""

import os
import re

import tensorflow as tf
from absl import logging

from koala import hints as hints_lib
from koala import vividness
from koala.bundle import files, keras_bundle
from koala.bundle.dynamic_resize import resize_accepting_dynamic_sizes

TFLITE_WEIGHTS = ("float32", "float16")
QUANTIZE_MODES = ("dynamic",)


class ExportError(RuntimeError):
    """An export that cannot be made as asked (existing version, Flex ops needed, ...)."""


def tflite_function(bundle):
    """L [1, h, w, 1] in [0, 100] at a working shape -> ab [1, h, w, 2] in Lab units.

    Height and width stay dynamic (fixed only for models with a fixed input): LiteRT
    resizes the input to each photo's working shape, aspect kept, in ~1 ms, so one file
    serves every photo (koala.inference.runtime); a phone app may fix one shape. The input
    scaling and the output decoding (Bundle.model_input, Bundle.ab_from_output) are inside,
    so a runtime needs no Keras. A model with the vividness control outputs its "ab",
    "ab_accurate" and "ab_vivid" stacked in that order as 6 channels (one output tensor,
    so the order cannot be lost: TFLite names outputs Identity, Identity_1, ...). A model
    with colour hints takes a second input, "hints" [1, h, w, 3] (koala.hints' map; zeros:
    the automatic result) and outputs its bin distribution too, [1, h/4, w/4, Q] (the
    palette of suggested colours).
    """
    height, width = bundle.lightness_input.shape[1:3]

    def lightness_to_ab(L, hint_map=None):  # noqa: N803
        inputs = {"L": bundle.model_input(L)}
        if hint_map is not None:
            inputs["hints"] = hint_map
        output = bundle.model(inputs, training=False)
        maps = ([output[name] for name in ("ab", vividness.ACCURATE, vividness.VIVID)]
                if vividness.has_control(output) else [output])
        result = {"ab": tf.concat([bundle.ab_from_output(ab, *keras_bundle.height_width(L), L)
                                   for ab in maps], axis=-1)}
        if isinstance(output, dict) and hints_lib.PALETTE_OUTPUT in output:
            result["bins"] = output[hints_lib.PALETTE_OUTPUT]  # told apart by its Q channels
        return result

    signature = [tf.TensorSpec([1, height, width, 1], tf.float32, "L")]
    if bundle.has_hint_input:
        signature.append(tf.TensorSpec([1, height, width, hints_lib.CHANNELS], tf.float32,
                                       "hints"))
    function = tf.function(lightness_to_ab, input_signature=signature)
    with resize_accepting_dynamic_sizes():  # bilinear UpSampling2D at a dynamic shape
        return function.get_concrete_function()


def convert_tflite(bundle, quantize=None, weights="float32"):
    """TFLite flatbuffer bytes with TFLite built-in ops only; ExportError names Flex ops.

    weights: "float32", or "float16" (half the size; dequantized once at load, the
    arithmetic stays float32).
    """
    if quantize not in (None,) + QUANTIZE_MODES:
        raise ExportError(f"--quantize must be one of {QUANTIZE_MODES}, not {quantize!r}")
    if weights not in TFLITE_WEIGHTS:
        raise ExportError(f"--tflite_weights must be one of {TFLITE_WEIGHTS}, not {weights!r}")
    # No trackable object: passing bundle.model made the converter freeze wrong weights
    # for a bundle fitted and saved earlier in the same process (tests/serving/test_litert.py).
    converter = tf.lite.TFLiteConverter.from_concrete_functions([tflite_function(bundle)])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # int8 weights, float activations
    elif weights == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    try:
        return converter.convert()
    except Exception as error:  # tf.lite's ConverterError; its text names the missing ops
        ops = flex_ops(str(error))
        if not ops:
            raise
        raise ExportError(
            f"the model needs ops that are not TFLite built-ins: {', '.join(ops)}. Koala's "
            "TFLite export uses built-ins only (no Flex delegate, which phones would have to "
            "ship); a resize or UpSampling2D other than bilinear is the usual cause: use "
            "interpolation='bilinear'.") from error


def flex_ops(converter_message):
    """Sorted TF op names that a ConverterError says TFLite lacks ([] for other errors)."""
    ops = set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op",
                         converter_message))
    for listed in re.findall(r"TF Select ops: ([\w, ]+)", converter_message):
        ops.update(op.strip() for op in listed.split(",") if op.strip())
    return sorted(ops)


def cached_tflite(path):
    """The shipped model's LiteRT copy, converted once (~15 s with TensorFlow) and cached.

    Not shipped: float32 is 19 MB (over the package's budget for it) and float16 weights
    differ from Keras by up to 3 levels of 8 bits on benchmark photos (float32: 1 level).
    """
    target = files.tflite_cache_dir() / f"{files.file_sha256(path / files.KERAS_FILE)}.tflite"
    logging.info("model %s: converting it to LiteRT once (float32, cached as %s); later "
                 "runs do not import TensorFlow", path.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    staged.write_bytes(convert_tflite(keras_bundle.load(path), weights="float32"))
    staged.replace(target)  # atomic: concurrent first runs each write a complete file
    return target
