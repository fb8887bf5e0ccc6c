"""Full-resolution colour science of a photo, in numpy and OpenCV only (no TensorFlow).

A photo is split into its full-resolution CIE L (what the model sees, resized) and what the
output keeps (alpha, depth); the model's small ab is then upsampled and recombined with that
L. This is the TF-free half of koala.color: the LiteRT runtime imports it without paying
~3.7 s and ~1 GB for TensorFlow, so the CIE constants live here and koala.color imports them.

Recombination is the costly part at 12 MP, so it runs in row bands of at most ~1 MP, one
per core at least, in threads (koala.bands): ab is upsampled per band (a small horizontal resize once, then the vertical pass per band), and
OpenCV's float Lab->RGB (exact, SIMD, threaded) converts the band. That conversion clips
out-of-gamut colours channel by channel, which would change lightness, so clipped pixels
(few in practice) are recomputed by blending, in linear RGB, towards the grey of the same
luminance Y: luminance is linear in linear RGB, so Y and hence L stay exact. Bands keep the
float temporaries at ~25 MB a core whatever the photo size."""

import dataclasses
import functools

import cv2
import numpy as np

from koala import bands

# sRGB (D65) -> XYZ, the matrix skimage uses; XYZ is normalised by the D65 white point.
RGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423],
     [0.212671, 0.715160, 0.072169],
     [0.019334, 0.119193, 0.950227]], dtype=np.float64)
XYZ_TO_RGB = np.linalg.inv(RGB_TO_XYZ)
D65_WHITE = np.array([0.95047, 1.0, 1.08883])
EPSILON = 0.008856  # (6/29)^3, CIE threshold between the cube root and the linear part
KAPPA = 7.787  # slope of the linear part: (29/6)^2 / 3
AB_SCALE = 128.0  # a, b in [-128, 127] <-> [-1, 1], the models' units
GRID_SIZE = 10  # Zhang et al.: ab space quantized with grid size 10
AB_RANGE = 110  # bin centres from -110 to 110
DEFAULT_STRIDE = 32  # every Koala model builds at sides divisible by 32
BAND_PIXELS = 1 << 20  # pixels per row band: float temporaries of ~25 MB at any photo size
# Mean Lab chroma from which a photo counts as a colour one: `has_colour` (colorize
# --keep_color) and the grayscale filter of the records (koala.data.images, --min_chroma).
# Neutral scans measure under 1, toned or faded prints well over 2.
COLOUR_CHROMA = 1.5
_Y_WEIGHTS = RGB_TO_XYZ[1]  # luminance Y of linear sRGB


# --------------------------------------------------------------------------- lightness

def _srgb_to_linear(values):
    return np.where(values > 0.04045, ((values + 0.055) / 1.055) ** 2.4, values / 12.92)


def _linear_to_srgb(linear):
    linear = np.maximum(linear, 0.0)
    return np.where(linear > 0.0031308, 1.055 * np.power(linear, 1 / 2.4) - 0.055, 12.92 * linear)


def _lightness_from_luminance(luminance):
    """CIE L from luminance Y (white = 1), as koala.color.rgb_to_lab computes it."""
    return np.where(luminance > EPSILON, 116.0 * np.cbrt(luminance) - 16.0,
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

    def band(rows):
        part = channels[rows]
        if integer:
            linear = _lookup(_linear_table(levels), part)
        else:
            linear = _srgb_to_linear(np.clip(part.astype(np.float64), 0.0, 1.0)).astype(np.float32)
        luminance = cv2.transform(linear, _Y_WEIGHTS[None].astype(np.float32))
        out[rows] = _lightness_from_luminance(luminance)

    bands.each_band(height, bands.band_rows(height, width, band_pixels), band)
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
    """Whether an RGB image is a colour photo (mean chroma of a thumbnail >= COLOUR_CHROMA)."""
    height, width = rgb.shape[:2]
    scale = min(1.0, 256 / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    thumb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    thumb = thumb.astype(np.float32) / (np.iinfo(rgb.dtype).max if rgb.dtype.kind == "u" else 1.0)
    lab = cv2.cvtColor(thumb, cv2.COLOR_RGB2Lab)
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean()) >= COLOUR_CHROMA


# --------------------------------------------------------------------------- recombination

_XYZ_TO_LINEAR = (XYZ_TO_RGB * D65_WHITE[None, :]).astype(np.float32)
_SRGB_CODES = 1 << 16  # linear light quantized to 16 bits for the sRGB curve lookup


def _f_inverse(f):
    """Inverse of the CIE f(t) (cube root above (6/29)^3, linear below)."""
    linear_part = (f - np.float32(16.0 / 116.0)) / np.float32(KAPPA)
    return np.where(f > np.float32(6.0 / 29.0), f * f * f, linear_part)


def lab_to_linear_rgb(lab):
    """Lab [..., 3] -> unclipped linear RGB [..., 3] (gamut tests: ab_bins)."""
    fy = (lab[..., 0] + 16.0) / 116.0
    xyz = np.stack([_f_inverse(fy + lab[..., 1] / 500.0), _f_inverse(fy),
                    _f_inverse(fy - lab[..., 2] / 200.0)], -1) * D65_WHITE
    return xyz @ XYZ_TO_RGB.T


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

    def band(rows):
        lab = cv2.merge([full_lightness[rows], _upsample_rows(wide, height, rows)])
        rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
        clipped = cv2.inRange(rgb, (1e-6,) * 3, (1 - 1e-6,) * 3) == 0
        if clipped.any():
            rgb[clipped] = _in_gamut_rgb(lab[clipped])
        out[rows] = _quantize(rgb, dtype)

    bands.each_band(height, bands.band_rows(height, width, band_pixels), band)
    return out


def gray_version(rgb):
    """The photo as an old black-and-white print would show it (what a colorizer sees): its
    own full-resolution L, a = b = 0, as uint8 RGB."""
    return recombine(split(rgb).lightness, np.zeros((1, 1, 2), np.float32))


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


# --------------------------------------------------------------------------- working shape

def working_shape(height, width, size, stride=DEFAULT_STRIDE):
    """Model input shape for a photo: about size^2 pixels, aspect kept, sides % stride == 0.

    Each side is at least one stride and at most 4 * size, so extreme panoramas still run.
    """
    scale = size / np.sqrt(height * width)

    def side(n):
        return int(np.clip(round(n * scale / stride), 1, 4 * size // stride)) * stride

    return side(height), side(width)


@functools.lru_cache(maxsize=None)
def ab_bins(grid_size=GRID_SIZE):
    """Centres [Q, 2] of the grid cells of ab space that hold in-gamut sRGB colours.

    A cell counts when any (L, a, b) with L in 0..100 and (a, b) sampled inside the cell
    converts to sRGB without clipping. Zhang et al. report Q = 313 for grid size 10; this
    derivation gives the number returned here (tests/test_color.py states and checks it).
    """
    centres = np.arange(-AB_RANGE, AB_RANGE + 1, grid_size, dtype=np.float64)
    offsets = np.linspace(-0.499 * grid_size, 0.499 * grid_size, 7)
    lightness = np.linspace(0.0, 100.0, 101)
    cells = np.stack(np.meshgrid(centres, centres, indexing="ij"), -1).reshape(-1, 2)
    sub = np.stack(np.meshgrid(offsets, offsets, indexing="ij"), -1).reshape(-1, 2)
    ab = cells[:, None, None, :] + sub[None, :, None, :]  # [C, S, 1, 2]
    ab = np.broadcast_to(ab, (len(cells), len(sub), len(lightness), 2))
    ll = np.broadcast_to(lightness[None, None, :, None], ab.shape[:-1] + (1,))
    lab = np.concatenate([ll, ab], -1)
    in_gamut = np.all(np.abs(lab_to_linear_rgb(lab) - 0.5) <= 0.5, axis=-1)
    keep = in_gamut.any(axis=(1, 2))
    return cells[keep].astype(np.float32)


def rgb_to_lab_cv2(rgb_uint8):
    """uint8 RGB [H, W, 3] -> float32 Lab by OpenCV (the writer's fast path).

    Float input keeps OpenCV on its exact (non-LUT) code path; the error against skimage
    is measured in tests/test_color.py.
    """
    return cv2.cvtColor(rgb_uint8.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def lab_to_rgb_cv2(lab):
    """float Lab [H, W, 3] -> float32 RGB in [0, 1] by OpenCV (clipped)."""
    return np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB), 0.0, 1.0)
