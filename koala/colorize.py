"""Colorize photos of any size: the model runs small, the photo keeps its own lightness.

The model sees L resized to its working size (about size^2 pixels, aspect kept, sides a
multiple of the model's stride); its ab is upsampled bilinearly to the full resolution and
recombined with the input's full-resolution L, so no detail is lost (seed 001).

Recombination is the costly part at 12 MP, so it runs in row bands of ~1 MP: ab is
upsampled per band (a small horizontal resize once, then the vertical pass per band), and
OpenCV's float Lab->RGB (exact, SIMD, threaded) converts the band. That conversion clips
out-of-gamut colours channel by channel, which would change lightness, so clipped pixels
(few in practice) are recomputed by blending, in linear RGB, towards the grey of the same
luminance Y: luminance is linear in linear RGB, so Y and hence L stay exact. Bands keep the
float temporaries at ~25 MB whatever the photo size."""

import collections
import dataclasses
import functools
import glob
import pathlib
import sys
import types

import cv2
import numpy as np
import tensorflow as tf

from koala import bundle as bundle_lib
from koala import color

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
DEFAULT_STRIDE = 32  # every Koala model builds at sides divisible by 32
BAND_PIXELS = 1 << 20  # pixels per row band: float temporaries of ~25 MB at any photo size
COLOUR_CHROMA = 2.0  # mean chroma above which an input counts as a colour photo (keep_color)
_Y_WEIGHTS = color.RGB_TO_XYZ[1]  # luminance Y of linear sRGB
_EXIF_ORIENTATION = 0x0112


class UnreadableImage(ValueError):
    """The file is missing, not an image, or in a format that cannot be decoded."""


# --------------------------------------------------------------------------- reading

def _apply_orientation(image, orientation):
    """EXIF orientation (1..8) -> the upright image (same mapping as PIL's exif_transpose)."""
    transforms = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    transform = transforms.get(orientation)
    return image if transform is None else np.ascontiguousarray(transform(image))


def _exif_orientation(path):
    """Orientation tag of a file (1 when absent or unreadable): PIL reads only the header."""
    from PIL import Image  # noqa: PLC0415 (only files with EXIF need it)

    try:
        with Image.open(path) as image:
            return int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 (a file PIL cannot parse simply has no orientation)
        return 1


def read_image(path):
    """An image file -> upright array: gray [H, W], RGB or RGBA; uint8 or uint16 as stored.

    OpenCV decodes (it keeps 16-bit depth and alpha, which PIL drops for RGB); PIL supplies
    the EXIF orientation, which OpenCV ignores when asked for the unchanged image.
    """
    path = pathlib.Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise UnreadableImage(f"{path}: {error.strerror or error}") from error
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise UnreadableImage(f"{path}: not a decodable image")
    if image.dtype not in (np.uint8, np.uint16):
        image = (np.clip(image, 0.0, 1.0) * 65535 + 0.5).astype(np.uint16)
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return _apply_orientation(image, _exif_orientation(path))


def write_image(path, image):
    """RGB(A) uint8/uint16 array -> file; JPEG gets 8-bit RGB (it holds no alpha, no 16 bits)."""
    path = pathlib.Path(path)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        if image.dtype == np.uint16:
            image = (image >> 8).astype(np.uint8)
        image = image[..., :3]
    code = cv2.COLOR_RGBA2BGRA if image.shape[-1] == 4 else cv2.COLOR_RGB2BGR
    ok, encoded = cv2.imencode(path.suffix, cv2.cvtColor(image, code))
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode {path.suffix}")
    encoded.tofile(path)


# --------------------------------------------------------------------------- lightness

def _srgb_to_linear(values):
    return np.where(values > 0.04045, ((values + 0.055) / 1.055) ** 2.4, values / 12.92)


def _linear_to_srgb(linear):
    linear = np.maximum(linear, 0.0)
    return np.where(linear > 0.0031308, 1.055 * np.power(linear, 1 / 2.4) - 0.055, 12.92 * linear)


def _lightness_from_luminance(luminance):
    """CIE L from luminance Y (white = 1), as color.rgb_to_lab computes it."""
    return np.where(luminance > color.EPSILON, 116.0 * np.cbrt(luminance) - 16.0,
                    903.3 * luminance).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _linear_table(levels):
    """Linear-light value of every code of an integer sRGB image (256 or 65536 codes)."""
    return _srgb_to_linear(np.arange(levels, dtype=np.float64) / (levels - 1)).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _gray_lightness_table(levels):
    """L of the grey R = G = B = code, for every code: gray inputs need one lookup a pixel."""
    return _lightness_from_luminance(_linear_table(levels).astype(np.float64))


def _lookup(table, codes):
    return cv2.LUT(codes, table) if codes.dtype == np.uint8 else np.take(table, codes)


def lightness(channels, band_pixels=BAND_PIXELS):
    """Gray [H, W] or RGB [H, W, 3] (uint8, uint16 or float in [0, 1]) -> L [H, W] float32.

    Gray needs one table lookup a pixel; RGB goes through linear light and Y in row bands,
    so that its float temporaries stay small at 12 MP.
    """
    integer = channels.dtype in (np.uint8, np.uint16)
    levels = 256 if channels.dtype == np.uint8 else 65536
    if channels.ndim == 2:
        if integer:
            return _lookup(_gray_lightness_table(levels), channels)
        values = np.clip(np.asarray(channels, np.float64), 0.0, 1.0)
        return _lightness_from_luminance(_srgb_to_linear(values))
    height, width = channels.shape[:2]
    out = np.empty((height, width), np.float32)
    band_rows = max(1, band_pixels // width)
    for top in range(0, height, band_rows):
        band = channels[top:top + band_rows]
        if integer:
            linear = _lookup(_linear_table(levels), band)
        else:
            linear = _srgb_to_linear(np.clip(band.astype(np.float64), 0.0, 1.0)).astype(np.float32)
        luminance = cv2.transform(linear, _Y_WEIGHTS[None].astype(np.float32))
        out[top:top + band_rows] = _lightness_from_luminance(luminance)
    return out


@dataclasses.dataclass
class Photo:
    """An input split into what the model needs and what the output must keep."""

    lightness: np.ndarray  # [H, W] float32, Lab units
    alpha: np.ndarray | None  # [H, W] as stored, or None
    dtype: np.dtype  # output depth: uint16 stays uint16, everything else becomes uint8
    rgb: np.ndarray | None  # the colour channels when the input had colour


def split(image):
    """Array (gray, gray+alpha, RGB, RGBA; uint8, uint16 or float in [0, 1]) -> Photo."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (2, 3, 4)):
        raise ValueError(f"expected a gray, gray+alpha, RGB or RGBA image, got {image.shape}")
    channels, alpha = image, None
    if image.ndim == 3 and image.shape[2] in (2, 4):
        channels, alpha = image[..., :-1], image[..., -1]
        channels = channels[..., 0] if channels.shape[2] == 1 else channels
    rgb = channels if channels.ndim == 3 else None
    dtype = np.dtype(np.uint16 if image.dtype == np.uint16 else np.uint8)
    if alpha is not None and alpha.dtype != dtype:
        alpha = (np.clip(alpha, 0, 1) * np.iinfo(dtype).max + 0.5).astype(dtype)
    return Photo(lightness(np.ascontiguousarray(channels)), alpha, dtype, rgb)


def has_colour(rgb):
    """Whether an RGB image is a colour photo (mean chroma of a thumbnail >= 2 Lab units)."""
    height, width = rgb.shape[:2]
    scale = min(1.0, 256 / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    thumb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    thumb = thumb.astype(np.float32) / (np.iinfo(rgb.dtype).max if rgb.dtype.kind == "u" else 1.0)
    lab = cv2.cvtColor(thumb, cv2.COLOR_RGB2Lab)
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean()) >= COLOUR_CHROMA


# --------------------------------------------------------------------------- recombination

_XYZ_TO_LINEAR = (color.XYZ_TO_RGB * color.D65_WHITE[None, :]).astype(np.float32)
_SRGB_CODES = 1 << 16  # linear light quantized to 16 bits for the sRGB curve lookup


def _f_inverse(f):
    """Inverse of the CIE f(t) (cube root above (6/29)^3, linear below)."""
    linear_part = (f - np.float32(16.0 / 116.0)) / np.float32(color.KAPPA)
    return np.where(f > np.float32(6.0 / 29.0), f * f * f, linear_part)


@functools.lru_cache(maxsize=None)
def _srgb_table():
    """sRGB value of every 16-bit linear level: the curve by lookup (error < 0.06 of an 8-bit
    level at the steepest, near black) instead of a power per channel."""
    return _linear_to_srgb(np.arange(_SRGB_CODES) / (_SRGB_CODES - 1)).astype(np.float32)


def _in_gamut_rgb(lab):
    """Lab [N, 3] -> sRGB [N, 3] in [0, 1], desaturating towards the grey of equal luminance.

    In linear RGB the luminance is a fixed weighted sum, so moving along the line towards
    (Y, Y, Y) keeps Y, and with it L, exactly; the largest step that stays in [0, 1] is taken.
    Written as float32 column operations: a very saturated model can send most pixels here.
    """
    lightness, a, b = (np.ascontiguousarray(lab[:, i]) for i in range(3))
    fy = (lightness + np.float32(16.0)) / np.float32(116.0)
    xyz = (_f_inverse(fy + a / np.float32(500.0)), _f_inverse(fy),
           _f_inverse(fy - b / np.float32(200.0)))
    luminance = np.clip(xyz[1], 0.0, 1.0)
    rgb = [m[0] * xyz[0] + m[1] * xyz[1] + m[2] * xyz[2] for m in _XYZ_TO_LINEAR]
    high = np.maximum(np.maximum(rgb[0], rgb[1]), rgb[2])
    low = np.minimum(np.minimum(rgb[0], rgb[1]), rgb[2])
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = np.minimum(np.where(high > 1.0, (1.0 - luminance) / (high - luminance), 1.0),
                          np.where(low < 0.0, luminance / (luminance - low), 1.0))
    keep = np.clip(np.nan_to_num(keep, nan=0.0), 0.0, 1.0)
    codes = [np.clip(luminance + keep * (c - luminance), 0.0, 1.0) * np.float32(_SRGB_CODES - 1)
             for c in rgb]
    return np.stack([_srgb_table()[(c + 0.5).astype(np.int32)] for c in codes], axis=1)


def recombine(full_lightness, ab, dtype=np.uint8, band_pixels=BAND_PIXELS):
    """L [H, W] + ab [h, w, 2] (any h, w; Lab units) -> RGB [H, W, 3] of `dtype`.

    ab is upsampled bilinearly (half-pixel centres, as cv2.resize and tf.image.resize) one
    row band at a time; the output's L equals `full_lightness` up to the final rounding.
    """
    height, width = full_lightness.shape
    wide = cv2.resize(np.ascontiguousarray(ab, np.float32), (width, ab.shape[0]),
                      interpolation=cv2.INTER_LINEAR)  # horizontal pass: [h, W, 2], small
    out = np.empty((height, width, 3), dtype)
    band_rows = max(1, band_pixels // width)
    for top in range(0, height, band_rows):
        rows = slice(top, min(top + band_rows, height))
        lab = cv2.merge([full_lightness[rows], _upsample_rows(wide, height, rows)])
        rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
        clipped = cv2.inRange(rgb, (1e-6,) * 3, (1 - 1e-6,) * 3) == 0
        if clipped.any():
            rgb[clipped] = _in_gamut_rgb(lab[clipped])
        out[rows] = _quantize(rgb, dtype)
    return out


def _upsample_rows(wide, height, rows):
    """Rows `rows` of `wide` [h, W, C] resized bilinearly to `height` rows (vertical pass)."""
    source = (np.arange(rows.start, rows.stop) + 0.5) * (wide.shape[0] / height) - 0.5
    source = np.clip(source, 0, wide.shape[0] - 1)
    below = np.floor(source).astype(np.int64)
    above = np.minimum(below + 1, wide.shape[0] - 1)
    fraction = (source - below).astype(np.float32)[:, None, None]
    band = wide[below]
    band += fraction * (wide[above] - band)
    return band


def _quantize(rgb, dtype):
    """[0, 1] floats -> rounded integers of `dtype` (OpenCV's saturating cast for 8 bits)."""
    if dtype == np.uint8:
        return cv2.convertScaleAbs(rgb, alpha=255.0)
    return np.multiply(rgb, float(np.iinfo(dtype).max)).__iadd__(0.5).astype(dtype)


# --------------------------------------------------------------------------- the model

def working_shape(height, width, size, stride=DEFAULT_STRIDE):
    """Model input shape for a photo: about size^2 pixels, aspect kept, sides % stride == 0.

    Each side is at least one stride and at most 4 * size, so extreme panoramas still run.
    """
    scale = size / np.sqrt(height * width)

    def side(n):
        return int(np.clip(round(n * scale / stride), 1, 4 * size // stride)) * stride

    return side(height), side(width)


class Colorizer:
    """A loaded model plus the any-size pipeline around it (keep one to stay warm).

    Fitting to the working size follows the bundle's "fit": "aspect" (default: about
    size^2 pixels, aspect kept, as for models trained on crops) or "pad" (long side to
    size, the rest padded white, as Deep Koalarization trains); models with a fixed input
    shape always get "pad" at that shape.
    """

    def __init__(self, model="default", size=None):
        self.bundle = model if isinstance(model, bundle_lib.Bundle) else bundle_lib.load(model)
        self.size = int(size or self.bundle.size)
        self.stride = int(self.bundle.meta.get("stride", DEFAULT_STRIDE))
        self.fit = self.bundle.meta.get("fit", "aspect")
        input_shape = tuple(self.bundle.model.inputs[0].shape[1:3])
        self.fixed_shape = None if None in input_shape else input_shape
        if self.fixed_shape:
            self.fit = "pad"
        self._graph = tf.function(self._call_model)  # one trace per input shape
        self._calls_per_shape = collections.Counter()

    def _call_model(self, scaled):
        return self.bundle.model({"L": scaled}, training=False)

    def model_ab(self, lightness):
        """L [N, h, w, 1] in Lab units at working size -> ab [N, h, w, 2] in Lab units.

        A graph runs the default model 4-5x faster than an eager call (20-30 vs 100-150 ms
        at 192x128 here) but costs ~1 s to trace per input shape (the models cannot be traced
        once for unknown H, W), so a shape runs eagerly the first time and as a graph from
        its second use on: videos, batches of alike photos and warm servers get the graph.
        """
        self._calls_per_shape[lightness.shape] += 1
        forward = self._graph if self._calls_per_shape[lightness.shape] > 1 else self._call_model
        lightness = tf.convert_to_tensor(lightness, tf.float32)
        output = forward(self.bundle.model_input(lightness))
        return self.bundle.ab_from_output(output, *lightness.shape[1:3], lightness).numpy()

    def small_lightness(self, full_lightness):
        """Full-res L -> (L at the working shape, the content box (top, bottom, left, right))."""
        height, width = full_lightness.shape
        if self.fit != "pad":
            h, w = working_shape(height, width, self.size, self.stride)
            return cv2.resize(full_lightness, (w, h), interpolation=cv2.INTER_AREA), (0, h, 0, w)
        size_h, size_w = self.fixed_shape or (self.size, self.size)
        scale = min(size_h / height, size_w / width)
        h, w = max(1, round(height * scale)), max(1, round(width * scale))
        canvas = np.full((size_h, size_w), 100.0, np.float32)  # white, as in training
        top, left = (size_h - h) // 2, (size_w - w) // 2
        canvas[top:top + h, left:left + w] = cv2.resize(full_lightness, (w, h),
                                                        interpolation=cv2.INTER_AREA)
        return canvas, (top, top + h, left, left + w)

    def predict_ab(self, lightness_maps):
        """Full-res L maps -> ab over each one's content at working scale; same shapes batch."""
        small = [self.small_lightness(lightness) for lightness in lightness_maps]
        results = [None] * len(small)
        by_shape = {}
        for index, (item, _) in enumerate(small):
            by_shape.setdefault(item.shape, []).append(index)
        for indices in by_shape.values():
            batch = np.stack([small[i][0] for i in indices])[..., None]
            for i, ab in zip(indices, self.model_ab(batch)):
                top, bottom, left, right = small[i][1]
                results[i] = ab[top:bottom, left:right]
        return results

    def colorize_many(self, images, keep_color=False, reference=None):
        """Arrays -> RGB(A) arrays (see `colorize`); predictions batched by working shape."""
        photos = [split(image) for image in images]
        todo = [i for i, p in enumerate(photos)
                if not (keep_color and p.rgb is not None and has_colour(p.rgb))]
        predicted = self.predict_ab([photos[i].lightness for i in todo])
        outputs = [np.asarray(image) for image in images]  # kept colour photos pass through
        for i, ab in zip(todo, predicted):
            photo = photos[i]
            if reference is not None:
                ab = self._guided(ab, photo.lightness, reference)
            rgb = recombine(photo.lightness, ab, photo.dtype)
            outputs[i] = rgb if photo.alpha is None else np.dstack([rgb, photo.alpha])
        return outputs

    def _guided(self, ab, full_lightness, reference):
        from koala import reference as reference_lib  # noqa: PLC0415 (optional path)

        small = cv2.resize(full_lightness, ab.shape[1::-1], interpolation=cv2.INTER_AREA)
        return reference_lib.guide(ab, small, reference)


@functools.lru_cache(maxsize=4)
def _cached_colorizer(model, size):
    return Colorizer(model, size)


def colorize(image, model="default", size=None, keep_color=False, reference=None):
    """Colorize one photo at full resolution.

    image: a path or an array (gray, RGB or RGBA; uint8, uint16 or float in [0, 1]).
    model: "default", a bundle/workdir path, a loaded Bundle or a Colorizer; loaded models
    are cached, so repeated calls are warm. size: working size (default: the bundle's).
    keep_color: colour inputs are returned as they are (sepia and gray ones are colorized).
    reference: path or RGB array of a similar colour photo to take colours from (seed 003).
    Returns RGB (RGBA if the input had alpha), uint16 for 16-bit input, else uint8; the
    output's L equals the input's L within rounding.
    """
    if isinstance(image, (str, pathlib.Path)):
        image = read_image(image)
    if isinstance(reference, (str, pathlib.Path)):
        reference = read_image(reference)
    if isinstance(model, Colorizer):
        colorizer = model
    elif isinstance(model, bundle_lib.Bundle):
        colorizer = Colorizer(model, size)
    else:
        colorizer = _cached_colorizer(str(model), size)
    return colorizer.colorize_many([image], keep_color, reference)[0]


# --------------------------------------------------------------------------- many files

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv"})


def find_inputs(inputs, suffixes=IMAGE_SUFFIXES | VIDEO_SUFFIXES):
    """Files, folders (searched recursively) and globs -> ([(root, path)], [unmatched input]).

    `root` is the folder an item was found under (its output keeps the relative tree), or
    the file's own folder.
    """
    found, unmatched = [], []
    for item in map(str, inputs):
        path = pathlib.Path(item)
        if path.is_dir():
            found += [(path, p) for p in sorted(path.rglob("*"))
                      if p.is_file() and p.suffix.lower() in suffixes]
        elif path.is_file():
            found.append((path.parent, path))
        else:
            matches = [pathlib.Path(m) for m in sorted(glob.glob(item, recursive=True))]
            found += [(m.parent, m) for m in matches if m.is_file()]
            if not matches:
                unmatched.append(item)
    return found, unmatched


def plan_outputs(found, output_dir, extension=".png", overwrite=False):
    """[(root, path)] -> [(path, target)]: one distinct target each, never an input.

    Images get `extension`, videos keep theirs. A target that already exists (or that two
    inputs would share) gets a "-1", "-2"... suffix unless `overwrite`; an input file is
    never a target, whatever `overwrite` says.
    """
    output_dir = pathlib.Path(output_dir)
    inputs = {path.resolve() for _, path in found}
    taken = set()
    pairs = []
    for root, path in found:
        suffix = path.suffix if path.suffix.lower() in VIDEO_SUFFIXES else extension
        target = (output_dir / path.relative_to(root)).with_suffix(suffix)
        candidate, counter = target, 0
        while (candidate.resolve() in inputs or candidate.resolve() in taken
               or (candidate.exists() and not overwrite)):
            counter += 1
            candidate = target.with_name(f"{target.stem}-{counter}{target.suffix}")
        taken.add(candidate.resolve())
        pairs.append((path, candidate))
    return pairs


def _read_or_error(path):
    try:
        return read_image(path), None
    except UnreadableImage as error:
        return None, str(error)


def colorize_files(pairs, colorizer, batch_size=8, **options):
    """Colorizes image files [(source, target)] in batches; yields (source, error or None).

    A file that cannot be read or written is reported and skipped; the others complete.
    `options` are those of `colorize` (keep_color, reference as an array).
    """
    for start in range(0, len(pairs), max(1, batch_size)):
        chunk = pairs[start:start + max(1, batch_size)]
        loaded = [_read_or_error(source) for source, _ in chunk]
        good = [i for i, (image, _) in enumerate(loaded) if image is not None]
        try:
            results = dict(zip(good, colorizer.colorize_many([loaded[i][0] for i in good],
                                                             **options)))
        except ValueError:  # one odd image in the batch: redo one by one to name it
            results = {}
            for i in good:
                try:
                    results[i] = colorizer.colorize_many([loaded[i][0]], **options)[0]
                except ValueError as error:
                    loaded[i] = (None, f"{chunk[i][0]}: {error}")
        for i, (source, target) in enumerate(chunk):
            error = loaded[i][1]
            if error is None:
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    write_image(target, results[i])
                except OSError as write_error:
                    error = f"{target}: {write_error}"
            yield source, error


def colorize_folder(input_dir, output_dir, model="default", extension=".png", batch_size=8,
                    **options):
    """Colorizes every image under `input_dir` (recursive) into `output_dir`, same tree.

    Returns {input path: error} for the files that failed; the rest are written.
    """
    colorizer = model if isinstance(model, Colorizer) else Colorizer(model)
    found, _ = find_inputs([input_dir], IMAGE_SUFFIXES)
    pairs = plan_outputs(found, output_dir, extension)
    return {str(source): error
            for source, error in colorize_files(pairs, colorizer, batch_size, **options) if error}


class _CallableModule(types.ModuleType):
    """`koala.colorize` is both this module and the function: the design's public API is
    `koala.colorize(image)`, and the package attribute of that name is this submodule once
    it is imported, so the module forwards calls to `colorize`."""

    def __call__(self, *args, **kwargs):
        return colorize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
