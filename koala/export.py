"""SavedModel export for TF Serving (and TFLite for phones) of a trained Koala bundle.

TF Serving runs only what is inside the graph, so the whole colorize path is exported:
decode the request's JPEG/PNG bytes, take L at full resolution, run the model at the
photo's working shape, upsample ab bilinearly, recombine with the full-resolution L and
encode a PNG, with the same numbers as `koala colorize` (koala/colorize.py) within one
level (tests/test_export.py compares them). One difference: like every TF decoder, the
graph ignores EXIF orientation, which `koala colorize` applies.

Everything is written with keras.export.ExportArchive: a plain tf.saved_model.save of a
tf.Module loads in Python, but `saved_model_cli run` fails on it ("Could not find variable").

Layout of an export (TF Serving discovers only integer version directories):

    DIR/<version>/saved_model.pb, variables/   the SavedModel
    DIR/<version>/koala_export.json            what was exported, from what, figures
    DIR/<version>/model.tflite                 with --tflite (model_int8.tflite: dynamic)

`koala export --tflite` without --output adds model.tflite to the bundle itself instead
(add_tflite_to_bundle): `koala colorize` then runs that bundle in LiteRT, without TensorFlow.
"""

import contextlib
import datetime
import json
import pathlib
import re
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl import logging

import koala
from koala import color, image_io, vividness
from koala import photo as photo_lib
from koala.inference import colorizer as colorizer_lib
from koala.inference import runtime

IMAGE_INPUT = "image_bytes"  # TF Serving's REST API base64-decodes inputs ending in _bytes
IMAGE_OUTPUT = "colorized_bytes"  # ... and base64-encodes outputs ending in _bytes
METADATA_FILE = "koala_export.json"
TFLITE_FILE = runtime.TFLITE_FILE
TFLITE_INT8_FILE = "model_int8.tflite"
TFLITE_WEIGHTS = ("float32", "float16")
# A bundle's own .tflite: float32 weights. float16 halves the file (default model: 9.7 MB
# instead of 19.3 MB) but differed from Keras by up to 3 levels of 8 bits (max ab 1.46) on
# 11 benchmark photos, float32 by at most 1 level.
BUNDLE_TFLITE_WEIGHTS = "float32"
QUANTIZE_MODES = ("dynamic",)
# zlib level 1: at 1 MP, 6x faster than the default level 6 (0.11 s vs 0.71 s here) for a
# PNG 6% larger; encoding was the largest single cost of a 1 MP request.
PNG_COMPRESSION = 1


class ExportError(RuntimeError):
    """An export that cannot be made as asked (existing version, Flex ops needed, ...)."""


# --------------------------------------------------------------------------- graph pieces

def _header_uint(image_bytes, offset, length, big_endian):
    """An unsigned integer of `length` bytes at `offset` of the encoded bytes (int64)."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(image_bytes, offset, length), tf.uint8),
                  tf.int64)
    powers = tf.range(length, dtype=tf.int64) * 8
    return tf.reduce_sum(tf.bitwise.left_shift(raw, powers[::-1] if big_endian else powers))


def header_shape(image_bytes):
    """(height, width) int64 read from the header alone: JPEG, PNG, GIF or BMP.

    The pixel limit is checked on these before any pixel is decoded: a 0.4 MB PNG can
    declare 20000 x 20000 pixels. Other formats raise InvalidArgument (HTTP 400).
    """
    long_enough = tf.debugging.assert_greater_equal(
        tf.strings.length(image_bytes), 26,
        message=f"{IMAGE_INPUT}: Unknown image file format (too short for an image header)")
    with tf.control_dependencies([long_enough]):
        image_bytes = tf.identity(image_bytes)
    magic = tf.strings.substr(image_bytes, 0, 4)

    def png():  # IHDR: width, height as big-endian uint32 at bytes 16 and 20
        return tf.stack([_header_uint(image_bytes, 20, 4, True),
                         _header_uint(image_bytes, 16, 4, True)])

    def gif():  # logical screen: little-endian uint16 width, height at bytes 6 and 8
        return tf.stack([_header_uint(image_bytes, 8, 2, False),
                         _header_uint(image_bytes, 6, 2, False)])

    def bmp():  # BITMAPINFOHEADER: int32 width, height (negative: top-down) at 18 and 22
        def signed(value):
            return tf.abs(tf.where(value >= 2 ** 31, value - 2 ** 32, value))
        return tf.stack([signed(_header_uint(image_bytes, 22, 4, False)),
                         signed(_header_uint(image_bytes, 18, 4, False))])

    def unknown():
        failed = tf.debugging.Assert(False, [f"{IMAGE_INPUT}: Unknown image file format "
                                             "(send JPEG, PNG, GIF or BMP)"])
        with tf.control_dependencies([failed]):
            return tf.zeros([2], tf.int64)

    return tf.case(
        [(tf.io.is_jpeg(image_bytes),
          lambda: tf.cast(tf.io.extract_jpeg_shape(image_bytes)[:2], tf.int64)),
         (tf.equal(magic, b"\x89PNG"), png),
         (tf.equal(tf.strings.substr(image_bytes, 0, 3), b"GIF"), gif),
         (tf.equal(tf.strings.substr(image_bytes, 0, 2), b"BM"), bmp)],
        default=unknown, exclusive=False)


def decode_rgb(image_bytes, max_pixels=image_io.DEFAULT_MAX_PIXELS):
    """Encoded image (JPEG, PNG, GIF, BMP) -> uint8 RGB [H, W, 3].

    The header's size is checked against `max_pixels` before decoding (InvalidArgument,
    which TF Serving returns as HTTP 400, naming the size and the limit).
    JPEGs are decoded with the accurate integer DCT, the one PIL and OpenCV use: the default
    fast DCT of tf.io.decode_image differs from them by up to 6 levels. Bad bytes raise
    InvalidArgument from the decoder ("Input is empty", "Unknown image file format",
    "Invalid JPEG data", "Invalid PNG"), which TF Serving returns as an HTTP 400 error.
    """
    not_empty = tf.debugging.assert_positive(
        tf.strings.length(image_bytes),
        message=f"{IMAGE_INPUT}: an entry is empty (expected an encoded JPEG or PNG image)")
    with tf.control_dependencies([not_empty]):
        image_bytes = tf.identity(image_bytes)
    height, width = tf.unstack(header_shape(image_bytes))
    within_limit = tf.debugging.Assert(
        height * width <= max_pixels,
        [f"{IMAGE_INPUT}: an image of width x height", width, height,
         f"exceeds the limit of {max_pixels} pixels (koala export --max_pixels)"])
    with tf.control_dependencies([within_limit]):  # no decoding before the check
        image_bytes = tf.identity(image_bytes)
    rgb = tf.cond(
        tf.io.is_jpeg(image_bytes),
        lambda: tf.io.decode_jpeg(image_bytes, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(image_bytes, channels=3, expand_animations=False))
    rgb.set_shape([None, None, 3])
    return rgb


def working_size(colorizer, height, width):
    """(h, w) of the model input for an H x W photo: koala.photo.working_shape in TF.

    About size^2 pixels, aspect kept, sides multiples of the stride, each side in
    [stride, 4 * size]; both use round-half-to-even, so they agree (tests check it).
    """
    size, stride = colorizer.size, colorizer.stride
    scale = size / tf.sqrt(tf.cast(height * width, tf.float64))

    def side(n):
        steps = tf.clip_by_value(tf.round(tf.cast(n, tf.float64) * scale / stride),
                                 1.0, float(4 * size // stride))
        return tf.cast(steps, tf.int32) * stride

    return side(height), side(width)


def small_lightness(colorizer, lightness):
    """Full-res L [N, H, W, 1] -> (L at the working shape, content box), as
    koala.colorize.Colorizer.small_lightness: area resampling (the same numbers as
    OpenCV's INTER_AREA, within 1e-3), "aspect" fit or "pad" fit on a white canvas."""
    height, width = tf.shape(lightness)[1], tf.shape(lightness)[2]
    if colorizer.fit != "pad":
        h, w = working_size(colorizer, height, width)
        return tf.image.resize(lightness, (h, w), method="area"), (0, h, 0, w)
    size_h, size_w = colorizer.fixed_shape or (colorizer.size, colorizer.size)
    scale = tf.minimum(size_h / tf.cast(height, tf.float64), size_w / tf.cast(width, tf.float64))
    h = tf.maximum(1, tf.cast(tf.round(tf.cast(height, tf.float64) * scale), tf.int32))
    w = tf.maximum(1, tf.cast(tf.round(tf.cast(width, tf.float64) * scale), tf.int32))
    top, left = (size_h - h) // 2, (size_w - w) // 2
    content = tf.image.resize(lightness, (h, w), method="area") - 100.0  # white canvas
    canvas = tf.pad(content, [[0, 0], [top, size_h - h - top], [left, size_w - w - left], [0, 0]])
    canvas = tf.ensure_shape(canvas + 100.0, [None, size_h, size_w, 1])
    return canvas, (top, top + h, left, left + w)


def lightness_to_ab(colorizer, lightness, vividness=None):
    """L [N, H, W, 1] in [0, 100] -> ab [N, H, W, 2]: the model at the working shape.

    ab comes back through Bundle.ab_from_output (regression, or annealed mean of bins),
    is cropped to the content box and upsampled bilinearly (the half-pixel centres of
    OpenCV's INTER_LINEAR, as koala.photo.recombine).
    """
    bundle = colorizer.bundle
    small, (top, bottom, left, right) = small_lightness(colorizer, lightness)
    output = bundle.model({"L": bundle.model_input(small)}, training=False)
    ab = bundle.ab_from_output(output, *_height_width(small), small, vividness)
    ab = ab[:, top:bottom, left:right]
    return tf.image.resize(ab, tf.shape(lightness)[1:3], method="bilinear")


def _height_width(images):
    """(H, W) of [N, H, W, C]: Python ints where static (Bundle.ab_from_output compares
    them with the output's static shape), tensors where not."""
    dynamic = tf.shape(images)
    return tuple(images.shape[i] if images.shape[i] is not None else dynamic[i] for i in (1, 2))


def lab_to_rgb_keeping_lightness(lab):
    """Lab [..., 3] -> sRGB [..., 3] in [0, 1]; out-of-gamut colours are desaturated
    towards the grey of equal luminance in linear RGB, so L survives (not clipped per
    channel). The TF form of koala.colorize's recombination; in-gamut colours are exact.
    """
    lightness, a, b = tf.unstack(tf.convert_to_tensor(lab, tf.float32), axis=-1)
    fy = (lightness + 16.0) / 116.0
    f = tf.stack([fy + a / 500.0, fy, fy - b / 200.0], axis=-1)
    xyz = tf.where(f > 0.2068966, f ** 3, (f - 16.0 / 116.0) / color.KAPPA)
    xyz = xyz * tf.constant(color.D65_WHITE, tf.float32)
    linear = tf.tensordot(xyz, tf.constant(color.XYZ_TO_RGB.T, tf.float32), axes=1)
    y_weights = tf.constant(color.RGB_TO_XYZ[1], tf.float32)
    luminance = tf.clip_by_value(tf.tensordot(linear, y_weights, axes=1), 0.0, 1.0)[..., None]
    towards = linear - luminance
    safe = tf.where(towards == 0.0, 1.0, towards)
    limit = tf.where(towards > 0, (1.0 - luminance) / safe,
                     tf.where(towards < 0, -luminance / safe, np.inf))
    keep = tf.clip_by_value(tf.reduce_min(limit, axis=-1, keepdims=True), 0.0, 1.0)
    linear = tf.maximum(luminance + keep * towards, 0.0)
    return tf.where(linear > 0.0031308,
                    1.055 * tf.pow(tf.maximum(linear, 0.0031308), 1.0 / 2.4) - 0.055,
                    12.92 * linear)


def colorize_rgb(colorizer, rgb, vividness=None):
    """uint8 RGB [H, W, 3] -> uint8 RGB [H, W, 3]: new ab, the original full-resolution L."""
    lightness = color.rgb_to_lab(tf.cast(rgb, tf.float32) / 255.0)[..., :1]
    ab = lightness_to_ab(colorizer, lightness[None], vividness)[0]
    out = lab_to_rgb_keeping_lightness(tf.concat([lightness, ab], axis=-1))
    return tf.cast(tf.clip_by_value(tf.round(out * 255.0), 0.0, 255.0), tf.uint8)


def serving_functions(bundle, max_pixels=image_io.DEFAULT_MAX_PIXELS):
    """{signature name: (function, input signature)} for ExportArchive.add_endpoint.

    Images in one request may differ in size, so each is colorized on its own
    (tf.map_fn); the model runs once per image at its working shape. The working size,
    stride and fit come from koala.colorize.Colorizer, so served and local results agree.
    """
    colorizer = colorizer_lib.Colorizer(bundle)

    def colorize_bytes(image_bytes, vividness=None):
        png = tf.map_fn(
            lambda one: tf.io.encode_png(
                colorize_rgb(colorizer, decode_rgb(one, max_pixels), vividness),
                PNG_COMPRESSION),
            image_bytes, fn_output_signature=tf.string)
        return {IMAGE_OUTPUT: png}

    def colorize_vividness(image_bytes, vividness):
        """serving_default at a chosen vividness (0 accurate .. 1 vivid), one per request."""
        checks = [tf.debugging.assert_greater_equal(vividness, 0.0, "vividness must be >= 0"),
                  tf.debugging.assert_less_equal(vividness, 1.0, "vividness must be <= 1")]
        with tf.control_dependencies(checks):
            return colorize_bytes(image_bytes, tf.identity(vividness))

    def colorize_tensor(L):  # noqa: N803  (the signature's input name)
        return {"ab": lightness_to_ab(colorizer, L)}

    def colorize_tf_example(serialized):
        """tf.Example with "image/encoded" bytes (as tensorflow/models official/vision)."""
        parsed = tf.io.parse_example(
            serialized, {"image/encoded": tf.io.FixedLenFeature([], tf.string)})
        return colorize_bytes(parsed["image/encoded"])

    functions = {
        "serving_default": (colorize_bytes, [tf.TensorSpec([None], tf.string, IMAGE_INPUT)]),
        "colorize_tensor": (
            colorize_tensor, [tf.TensorSpec([None, None, None, 1], tf.float32, "L")]),
        "colorize_tf_example": (
            colorize_tf_example, [tf.TensorSpec([None], tf.string, "serialized")]),
    }
    if "vividness" in bundle.meta:  # the model has the control (koala.vividness)
        functions["colorize_vividness"] = (colorize_vividness, [
            tf.TensorSpec([None], tf.string, IMAGE_INPUT), tf.TensorSpec([], tf.float32,
                                                                        "vividness")])
    return functions


# --------------------------------------------------------------------------- versions

def existing_versions(base_dir):
    """Integer version directories under base_dir, sorted."""
    base_dir = pathlib.Path(base_dir)
    if not base_dir.is_dir():
        return []
    return sorted(int(p.name) for p in base_dir.iterdir() if p.is_dir() and p.name.isdigit())


def choose_version(base_dir, version=None):
    """`version`, or the next free integer; never an existing one (no silent overwrite)."""
    versions = existing_versions(base_dir)
    if version is None:
        return (versions[-1] + 1) if versions else 1
    version = int(version)
    if version < 0:
        raise ExportError(f"--version must be a non-negative integer, not {version}")
    if (pathlib.Path(base_dir) / str(version)).exists():
        raise ExportError(
            f"{base_dir}/{version} exists; exports are never overwritten: pass another "
            f"--version or omit it (next free: {choose_version(base_dir)})")
    return version


# --------------------------------------------------------------------------- SavedModel

def write_saved_model(bundle, directory, max_pixels=image_io.DEFAULT_MAX_PIXELS):
    """Writes the SavedModel with every signature of serving_functions into `directory`.

    The model is not passed to archive.track(): the endpoints capture its variables
    anyway, and tracking stored every weight twice (a 42 MB export of 19 MB of weights).
    """
    archive = keras.export.ExportArchive()
    with resize_accepting_dynamic_sizes():
        for name, (function, signature) in serving_functions(bundle, max_pixels).items():
            archive.add_endpoint(name, function, input_signature=signature)
        archive.write_out(str(directory), verbose=False)


@contextlib.contextmanager
def resize_accepting_dynamic_sizes():
    """While tracing, keras.ops.image.resize accepts sizes that are graph tensors.

    Keras 3.15 checks `size[0] <= 0` in Python before resizing; on a dynamic size in a
    graph traced without AutoGraph (as ExportArchive traces) that raises "Using a symbolic
    tf.Tensor as a Python bool is not allowed". Bilinear UpSampling2D resizes to its input's
    dynamic shape times the factor, so every model with one would fail to export at a
    photo's own working shape. Inside this block such calls skip only that check and go to
    the same backend resize; static sizes and Keras symbolic tensors keep the full path.
    """
    from keras.src.ops import image as image_ops  # noqa: PLC0415  (the function patched)

    checked = image_ops.resize

    def resize(images, size, *args, **kwargs):
        if all(isinstance(side, int) for side in size) or isinstance(images, keras.KerasTensor):
            return checked(images, size, *args, **kwargs)
        return image_ops._resize(images, size, *args, **kwargs)

    image_ops.resize = resize
    try:
        yield
    finally:
        image_ops.resize = checked


# --------------------------------------------------------------------------- TFLite

def tflite_function(bundle):
    """L [1, h, w, 1] in [0, 100] at a working shape -> ab [1, h, w, 2] in Lab units.

    Height and width stay dynamic (fixed only for models with a fixed input): LiteRT
    resizes the input to each photo's working shape, aspect kept, in ~1 ms, so one file
    serves every photo (koala.inference.runtime); a phone app may fix one shape. The input
    scaling and the output decoding (Bundle.model_input, Bundle.ab_from_output) are inside,
    so a runtime needs no Keras. A model with the vividness control outputs its "ab",
    "ab_accurate" and "ab_vivid" stacked in that order as 6 channels (one output tensor,
    so the order cannot be lost: TFLite names outputs Identity, Identity_1, ...).
    """
    height, width = bundle.model.inputs[0].shape[1:3]

    @tf.function(input_signature=[tf.TensorSpec([1, height, width, 1], tf.float32, "L")])
    def lightness_to_ab(L):  # noqa: N803
        output = bundle.model({"L": bundle.model_input(L)}, training=False)
        maps = ([output[name] for name in ("ab", vividness.ACCURATE, vividness.VIVID)]
                if vividness.has_control(output) else [output])
        return {"ab": tf.concat([bundle.ab_from_output(ab, *_height_width(L), L)
                                 for ab in maps], axis=-1)}

    with resize_accepting_dynamic_sizes():  # bilinear UpSampling2D at a dynamic shape
        return lightness_to_ab.get_concrete_function()


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
    # for a bundle fitted and saved earlier in the same process (tests/test_litert.py).
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


def tflite_ab(model_bytes, lightness):
    """Runs a TFLite export on L [N, h, w, 1] (Lab units) through LiteRT -> ab."""
    return runtime.LiteRTRuntime(model_bytes).ab(lightness)


def working_size_lightness(paths, size):
    """L [N, size, size, 1] in [0, 100] of real photos, resized as the exports resize them."""
    images = []
    for path in paths:
        rgb = decode_rgb(tf.io.read_file(str(path)))
        lightness = color.rgb_to_lab(tf.cast(rgb, tf.float32) / 255.0)[None, ..., :1]
        images.append(tf.image.resize(lightness, (size, size), method="area"))
    return tf.concat(images, axis=0).numpy()


def tflite_parity(bundle, model_bytes, photo_paths):
    """A TFLite export vs the Keras model on real photos, each at its own working shape.

    max/mean_ab_diff: |ab| in Lab units at the working shape; max_level_diff: the largest
    difference of the full-resolution 8-bit colorizations, what a person would see.
    """
    keras_colorizer, lite = colorizer_lib.Colorizer(bundle), runtime.LiteRTRuntime(model_bytes)
    ab_diffs, level_diff = [], 0
    for path in photo_paths:
        photo = photo_lib.split(image_io.read_image(path))
        small = keras_colorizer.small_lightness(photo.lightness)[0][None, ..., None]
        keras_ab, lite_ab = keras_colorizer.model_ab(small)[0], lite.ab(small)[0]
        ab_diffs.append(np.abs(keras_ab - lite_ab))
        outputs = [photo_lib.recombine(photo.lightness, ab).astype(np.int16)
                   for ab in (keras_ab, lite_ab)]
        level_diff = max(level_diff, int(np.abs(outputs[0] - outputs[1]).max()))
    return {"photos": len(photo_paths), "max_ab_diff": float(max(d.max() for d in ab_diffs)),
            "mean_ab_diff": float(np.mean([d.mean() for d in ab_diffs])),
            "max_level_diff": level_diff}


def default_parity_photos():
    """Real colour photos shipped with scikit-image (offline), when none are given."""
    import skimage.data

    folder = pathlib.Path(skimage.data.__file__).parent
    return [folder / name for name in ("astronaut.png", "chelsea.png", "coffee.png")
            if (folder / name).is_file()]


def write_tflite(bundle, directory, quantize=None, parity_photos=None):
    """Writes model.tflite (and model_int8.tflite when quantized); returns their figures."""
    photos = list(parity_photos or default_parity_photos())
    figures = {}
    files = {TFLITE_FILE: None, **({TFLITE_INT8_FILE: quantize} if quantize else {})}
    for name, mode in files.items():
        model_bytes = convert_tflite(bundle, mode)
        (pathlib.Path(directory) / name).write_bytes(model_bytes)
        figures[name] = {"quantize": mode, "bytes": len(model_bytes),
                         "parity_vs_keras": tflite_parity(bundle, model_bytes, photos)}
        logging.info("%s: %.1f MB, ab difference vs Keras on %d photos: max %.3f, mean %.4f",
                     name, len(model_bytes) / 1e6, len(photos),
                     figures[name]["parity_vs_keras"]["max_ab_diff"],
                     figures[name]["parity_vs_keras"]["mean_ab_diff"])
    return figures


def add_tflite_to_bundle(bundle, weights=BUNDLE_TFLITE_WEIGHTS, parity_photos=None):
    """Writes BUNDLE/model.tflite (+ model.tflite.json) so that colorize runs it in LiteRT.

    model.tflite.json records the SHA-256 of the model.keras converted, its figures and
    parity; a current .tflite is left alone, a stale one (the bundle was retrained) is
    replaced. Returns the figures.
    """
    directory = pathlib.Path(bundle.path)
    if runtime.tflite_is_current(directory):
        logging.info("%s already has a current %s", directory, TFLITE_FILE)
        return json.loads((directory / runtime.TFLITE_INFO_FILE).read_text())
    model_bytes = convert_tflite(bundle, weights=weights)
    photos = list(parity_photos or default_parity_photos())
    info = {"keras_sha256": runtime.file_sha256(directory / runtime.KERAS_FILE),
            "weights": weights, "bytes": len(model_bytes),
            "parity_vs_keras": tflite_parity(bundle, model_bytes, photos),
            "tensorflow": tf.__version__}
    staged = directory / (TFLITE_FILE + ".tmp")
    staged.write_bytes(model_bytes)
    (directory / runtime.TFLITE_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    staged.replace(directory / TFLITE_FILE)
    logging.info("%s: %.1f MB (%s weights); vs Keras on %d photos: max %d level(s) of 8 bits, "
                 "max ab %.3f", directory / TFLITE_FILE, len(model_bytes) / 1e6, weights,
                 len(photos), info["parity_vs_keras"]["max_level_diff"],
                 info["parity_vs_keras"]["max_ab_diff"])
    return info


# --------------------------------------------------------------------------- the export

def directory_bytes(directory):
    """Total size of the files under `directory`."""
    return sum(p.stat().st_size for p in pathlib.Path(directory).rglob("*") if p.is_file())


def export(bundle, output_dir, version=None, tflite=False, quantize=None, parity_photos=None,
           max_pixels=image_io.DEFAULT_MAX_PIXELS):
    """Writes OUTPUT_DIR/<version>/ and returns its path; the metadata holds the figures.

    The version is assembled in a hidden temporary directory beside it and renamed into
    place at the end: TF Serving polls OUTPUT_DIR and must never see a half-written version.
    """
    if quantize and not tflite:
        raise ExportError("--quantize applies to the TFLite file: add --tflite")
    output_dir = pathlib.Path(output_dir)
    version = choose_version(output_dir, version)
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".koala-export-{version}-", dir=output_dir))
    staging.chmod(0o755)  # mkdtemp makes it private; a serving container may run as another user
    try:
        write_saved_model(bundle, staging, max_pixels)
        metadata = {
            "koala_version": koala.__version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "version": version,
            "bundle": str(bundle.path),
            "bundle_meta": bundle.meta,
            "working_size": bundle.size,
            "max_pixels": max_pixels,  # larger images: InvalidArgument before decoding
            "signatures": {
                "serving_default": {"inputs": {IMAGE_INPUT: "string [N] encoded JPEG/PNG"},
                                    "outputs": {IMAGE_OUTPUT: "string [N] PNG, input size"}},
                "colorize_tensor": {"inputs": {"L": "float32 [N,H,W,1] in [0,100]"},
                                    "outputs": {"ab": "float32 [N,H,W,2] Lab units"}},
                "colorize_tf_example": {"inputs": {"serialized": "tf.Example with image/encoded"},
                                        "outputs": {IMAGE_OUTPUT: "string [N] PNG"}},
            },
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "saved_model_bytes": directory_bytes(staging),
        }
        if tflite:
            metadata["tflite"] = write_tflite(bundle, staging, quantize, parity_photos)
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        target = output_dir / str(version)
        staging.rename(target)  # raises if another export filled this version meanwhile
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logging.info("exported %s (%.1f MB SavedModel) to %s", bundle.name,
                 metadata["saved_model_bytes"] / 1e6, target)
    return target
