"""The colorize path as a TensorFlow graph, for the SavedModel that TF Serving runs.

TF Serving runs only what is inside the graph, so the whole path is here: decode the
request's JPEG/PNG bytes, take L at full resolution, run the model at the photo's working
shape, upsample ab bilinearly and recombine with the full-resolution L, with the same
numbers as `koala colorize` (koala.inference.colorizer) within one level
(tests/serving/test_export.py compares them). One difference: like every TF decoder, the
graph ignores EXIF orientation, which `koala colorize` applies.

The working shape and the fit have NumPy/OpenCV forms in koala.photo and
koala.inference.colorizer; the TF forms here exist only because the graph needs them (a
SavedModel cannot call NumPy), and tests check that the two agree. The recombination's TF
form is koala.color.lab_to_rgb(keep_lightness=True).
"""

import dataclasses

import tensorflow as tf

from koala import color, image_io
from koala import photo as photo_lib
from koala.bundle import keras_bundle

IMAGE_INPUT = "image_bytes"  # TF Serving's REST API base64-decodes inputs ending in _bytes
IMAGE_OUTPUT = "colorized_bytes"  # ... and base64-encodes outputs ending in _bytes
# zlib level 1: at 1 MP, 6x faster than the default level 6 (0.11 s vs 0.71 s here) for a
# PNG 6% larger; encoding was the largest single cost of a 1 MP request.
PNG_COMPRESSION = 1


# --------------------------------------------------------------------------- decoding

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


# --------------------------------------------------------------------------- working shape

@dataclasses.dataclass(frozen=True)
class Fit:
    """How a bundle's model input is fitted, read from the bundle as
    koala.inference.colorizer.Colorizer reads it: "aspect" (about size^2 pixels, aspect kept)
    or "pad" (long side to size, padded white); a fixed input shape always pads to it."""

    size: int
    stride: int
    mode: str
    fixed_shape: tuple | None

    @classmethod
    def of(cls, bundle):
        shape = tuple(bundle.lightness_input.shape[1:3])
        fixed = None if None in shape else shape
        return cls(int(bundle.size), int(bundle.meta.get("stride", photo_lib.DEFAULT_STRIDE)),
                   "pad" if fixed else bundle.meta.get("fit", "aspect"), fixed)


def working_size(height, width, size, stride=photo_lib.DEFAULT_STRIDE):
    """(h, w) of the model input for an H x W photo: koala.photo.working_shape in TF.

    About size^2 pixels, aspect kept, sides multiples of the stride, each side in
    [stride, 4 * size]; both use round-half-to-even, so they agree (tests check it).
    """
    scale = size / tf.sqrt(tf.cast(height * width, tf.float64))

    def side(n):
        steps = tf.clip_by_value(tf.round(tf.cast(n, tf.float64) * scale / stride),
                                 1.0, float(4 * size // stride))
        return tf.cast(steps, tf.int32) * stride

    return side(height), side(width)


def small_lightness(fit, lightness):
    """Full-res L [N, H, W, 1] -> (L at the working shape, content box), as
    koala.inference.colorizer.Colorizer.small_lightness: area resampling (the same numbers
    as OpenCV's INTER_AREA, within 1e-3), "aspect" fit or "pad" fit on a white canvas."""
    height, width = tf.shape(lightness)[1], tf.shape(lightness)[2]
    if fit.mode != "pad":
        h, w = working_size(height, width, fit.size, fit.stride)
        return tf.image.resize(lightness, (h, w), method="area"), (0, h, 0, w)
    size_h, size_w = fit.fixed_shape or (fit.size, fit.size)
    scale = tf.minimum(size_h / tf.cast(height, tf.float64), size_w / tf.cast(width, tf.float64))
    h = tf.maximum(1, tf.cast(tf.round(tf.cast(height, tf.float64) * scale), tf.int32))
    w = tf.maximum(1, tf.cast(tf.round(tf.cast(width, tf.float64) * scale), tf.int32))
    top, left = (size_h - h) // 2, (size_w - w) // 2
    content = tf.image.resize(lightness, (h, w), method="area") - 100.0  # white canvas
    canvas = tf.pad(content, [[0, 0], [top, size_h - h - top], [left, size_w - w - left], [0, 0]])
    canvas = tf.ensure_shape(canvas + 100.0, [None, size_h, size_w, 1])
    return canvas, (top, top + h, left, left + w)


# --------------------------------------------------------------------------- colorizing

def lightness_to_ab(bundle, lightness, vividness=None, hint_points=None):
    """L [N, H, W, 1] in [0, 100] -> ab [N, H, W, 2]: the model at the working shape.

    ab comes back through Bundle.ab_from_output (regression, or annealed mean of bins),
    is cropped to the content box and upsampled bilinearly (the half-pixel centres of
    OpenCV's INTER_LINEAR, as koala.photo.recombine). A hint model gets the hint map of
    `hint_points` [N, K, 5] (see `hint_map`; None: no hints).
    """
    small, box = small_lightness(Fit.of(bundle), lightness)
    hint_map = None
    if bundle.has_hint_input and hint_points is not None:
        full, working = tf.shape(lightness)[1:3], tf.shape(small)[1:3]
        hint_map = tf.map_fn(lambda points: hint_map_in_box(points, full, box, working),
                             tf.cast(hint_points, tf.float32))
    output = bundle.model(bundle.model_inputs(small, hint_map), training=False)
    ab = bundle.ab_from_output(output, *keras_bundle.height_width(small), small, vividness)
    top, bottom, left, right = box
    ab = ab[:, top:bottom, left:right]
    return tf.image.resize(ab, tf.shape(lightness)[1:3], method="bilinear")


def hint_map(points, height, width, work_height, work_width):
    """koala.hints.hint_map in TF: points [K, 5] of (x, y, a, b, size) in input pixel
    coordinates and Lab units (rows of size 0 are padding) -> the map [h, w, 3] at the
    working shape; a later point overwrites an earlier one (tests compare the two)."""
    x, y, a, b, size = tf.unstack(tf.cast(points, tf.float64), axis=-1)
    scale_x = tf.cast(work_width, tf.float64) / tf.cast(width, tf.float64)
    scale_y = tf.cast(work_height, tf.float64) / tf.cast(height, tf.float64)

    def span(centre, scale, side):
        low = tf.floor(((centre + 0.5 - size / 2) * scale) + 1e-6)
        high = tf.math.ceil(((centre + 0.5 + size / 2) * scale) - 1e-6)
        start = tf.clip_by_value(low, 0.0, tf.cast(side, tf.float64) - 1.0)
        end = tf.maximum(start + 1.0, tf.minimum(tf.cast(side, tf.float64), high))
        return start, end

    col0, col1 = span(x, scale_x, work_width)
    row0, row1 = span(y, scale_y, work_height)
    rows = tf.range(tf.cast(work_height, tf.float64))[None, :, None]
    cols = tf.range(tf.cast(work_width, tf.float64))[None, None, :]
    inside = ((rows >= row0[:, None, None]) & (rows < row1[:, None, None])
              & (cols >= col0[:, None, None]) & (cols < col1[:, None, None])
              & (size > 0)[:, None, None])  # [K, h, w]
    order = tf.cast(tf.range(1, tf.shape(points)[0] + 1), tf.float64)[:, None, None]
    last = tf.argmax(tf.cast(inside, tf.float64) * order, axis=0)
    mask = tf.cast(tf.reduce_any(inside, axis=0), tf.float32)
    colours = tf.gather(tf.stack([a, b], -1), last) / color.AB_SCALE
    return tf.concat([tf.cast(colours, tf.float32) * mask[..., None], mask[..., None]], -1)


def hint_map_in_box(points, full_shape, box, working_shape):
    """The hint map over the content box of a fit, zero on its padding."""
    top, bottom, left, right = box
    inner = hint_map(points, full_shape[0], full_shape[1], bottom - top, right - left)
    return tf.pad(inner, [[top, working_shape[0] - bottom], [left, working_shape[1] - right],
                          [0, 0]])


def colorize_rgb(bundle, rgb, vividness=None, hint_points=None):
    """uint8 RGB [H, W, 3] -> uint8 RGB [H, W, 3]: new ab, the original full-resolution L
    (steered by `hint_points` [K, 5], see `hint_map`, for a hint model)."""
    lightness = color.rgb_to_lab(tf.cast(rgb, tf.float32) / 255.0)[..., :1]
    points = None if hint_points is None else hint_points[None]
    ab = lightness_to_ab(bundle, lightness[None], vividness, points)[0]
    out = color.lab_to_rgb(tf.concat([lightness, ab], axis=-1), keep_lightness=True)
    return tf.cast(tf.clip_by_value(tf.round(out * 255.0), 0.0, 255.0), tf.uint8)


def colorize_bytes(bundle, image_bytes, max_pixels=image_io.DEFAULT_MAX_PIXELS, vividness=None,
                   hint_points=None):
    """Encoded images [N] -> PNGs [N] of their own sizes, each colorized on its own (images
    of one request may differ in size; tf.map_fn runs the model once per image); with
    `hint_points` [N, K, 5], image i is steered by its K points."""
    def one(image, points=None):
        rgb = colorize_rgb(bundle, decode_rgb(image, max_pixels), vividness, points)
        return tf.io.encode_png(rgb, PNG_COMPRESSION)

    if hint_points is None:
        return tf.map_fn(one, image_bytes, fn_output_signature=tf.string)
    return tf.map_fn(lambda args: one(*args), (image_bytes, tf.cast(hint_points, tf.float32)),
                     fn_output_signature=tf.string)
