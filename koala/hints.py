"""Colour hints (Zhang et al. 2017): points where the user says which colour the photo has.

A hint is a dict {"x": column, "y": row, "ab": [a, b] or "rgb": [r, g, b] / "#rrggbb",
"size": side}: the centre in the input's pixel coordinates (the top-left pixel's centre is
(0, 0)), a colour that counts by its chroma only (the photo keeps its lightness), and the
side of the square it covers in input pixels (default 1). Models see hints as a map at their
working size, [h, w, 3] float32: a/128 and b/128 inside the hinted squares, and a mask
(1 there, 0 elsewhere); no hints is an all-zero map, on which a hint model is the automatic
model. NumPy and OpenCV only: the LiteRT path (no TensorFlow) renders hints too.
"""

import json

import numpy as np

from koala.paths import read_text
from koala.photo import AB_SCALE, rgb_to_lab_cv2

CHANNELS = 3  # a/128, b/128, mask
PALETTE_OUTPUT = "ab_bins"  # a hint model's bin distribution at stride 4: the suggested colours
PALETTE_STRIDE = 4
MAX_SIZE = 512  # a hint square's side, in input pixels
PROTOCOL_SIZE = 6  # Zhang et al. 2017's evaluation: 6x6 squares of the true mean colour
KEYS = {"x", "y", "ab", "rgb", "size"}


class HintError(ValueError):
    """A hint that cannot be used: outside the image, a bad colour, not JSON."""


def _number(value, what, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise HintError(f"{where}: {what} must be a finite number, not {value!r}")
    return float(value)


def _rgb_to_ab(rgb, where):
    """[r, g, b] in 0-255 or "#rrggbb" -> [a, b] of that colour in CIE Lab (D65)."""
    if isinstance(rgb, str):
        text = rgb.strip().lstrip("#")
        if len(text) != 6 or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise HintError(f"{where}: rgb {rgb!r} is not a colour like \"#1f77b4\"")
        rgb = [int(text[i:i + 2], 16) for i in (0, 2, 4)]
    if not isinstance(rgb, (list, tuple)) or len(rgb) != 3:
        raise HintError(f"{where}: rgb must be [r, g, b] (0-255) or \"#rrggbb\", not {rgb!r}")
    values = [_number(v, "rgb", where) for v in rgb]
    if not all(0 <= v <= 255 for v in values):
        raise HintError(f"{where}: rgb values must lie in 0-255, not {rgb!r}")
    pixel = np.asarray(values, np.float32).reshape(1, 1, 3)
    return rgb_to_lab_cv2(pixel)[0, 0, 1:].astype(float).tolist()


def check(hints, width, height, where="hints"):
    """Validated hints -> list of (x, y, a, b, size); HintError names `where` and the problem."""
    if hints is None:
        return []
    if not isinstance(hints, (list, tuple)):
        raise HintError(f"{where}: hints must be a list of {{\"x\", \"y\", \"ab\" or \"rgb\", "
                        f"\"size\"}} objects, not {type(hints).__name__}")
    checked = []
    for index, hint in enumerate(hints):
        at = f"{where}: hint {index}"
        if not isinstance(hint, dict):
            raise HintError(f"{at} must be an object, not {hint!r}")
        unknown = set(hint) - KEYS
        if unknown:
            raise HintError(f"{at} has unknown keys {sorted(unknown)} (known: {sorted(KEYS)})")
        if "x" not in hint or "y" not in hint:
            raise HintError(f"{at} needs \"x\" and \"y\"")
        x, y = _number(hint["x"], "x", at), _number(hint["y"], "y", at)
        if not (-0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5):
            raise HintError(f"{at} at ({x:g}, {y:g}) is outside the {width}x{height} image")
        if ("ab" in hint) == ("rgb" in hint):
            raise HintError(f"{at} needs exactly one colour, \"ab\" or \"rgb\"")
        if "ab" in hint:
            ab = hint["ab"]
            if not isinstance(ab, (list, tuple)) or len(ab) != 2:
                raise HintError(f"{at}: ab must be [a, b] in CIE Lab units, not {ab!r}")
            ab = [_number(v, "ab", at) for v in ab]
            if not all(-128 <= v <= 127 for v in ab):
                raise HintError(f"{at}: ab values must lie in [-128, 127], not {hint['ab']!r}")
        else:
            ab = _rgb_to_ab(hint["rgb"], at)
        size = _number(hint.get("size", 1), "size", at)
        if not 0 < size <= MAX_SIZE:
            raise HintError(f"{at}: size must be in (0, {MAX_SIZE}] pixels, not {size:g}")
        checked.append((x, y, ab[0], ab[1], size))
    return checked


def hint_map(hints, width, height, work_width, work_height):
    """Checked hints (input coordinates) -> the [work_height, work_width, 3] map a model takes.

    A square of side `size` input pixels around (x, y) becomes the working pixels it overlaps
    (at least one); a later hint overwrites an earlier one where they overlap.
    """
    result = np.zeros((work_height, work_width, CHANNELS), np.float32)
    scale_x, scale_y = work_width / width, work_height / height
    for x, y, a, b, size in hints:
        half = size / 2.0
        # input pixel i covers [i - 0.5, i + 0.5]; working pixel j covers [j, j + 1] / scale
        left, right = (x + 0.5 - half) * scale_x, (x + 0.5 + half) * scale_x
        top, bottom = (y + 0.5 - half) * scale_y, (y + 0.5 + half) * scale_y
        col0 = min(work_width - 1, max(0, int(np.floor(left + 1e-6))))
        row0 = min(work_height - 1, max(0, int(np.floor(top + 1e-6))))
        col1 = max(col0 + 1, min(work_width, int(np.ceil(right - 1e-6))))
        row1 = max(row0 + 1, min(work_height, int(np.ceil(bottom - 1e-6))))
        result[row0:row1, col0:col1] = (a / AB_SCALE, b / AB_SCALE, 1.0)
    return result


def parse_json(text, where):
    """JSON text -> a list (one photo's hints) or a dict {file name: list}; HintError if not."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise HintError(f"{where}: not JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(value, (list, dict)):
        raise HintError(f"{where}: expected a list of hints or an object {{file name: list}}")
    return value


def load(path):
    """A hints JSON file (any tf.io.gfile-style path koala.paths reads)."""
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError) as error:
        raise HintError(f"{path}: cannot read the hints file ({error})") from None
    return parse_json(text, path)


def for_photo(hints, photo_path):
    """The hints of `photo_path` out of a loaded file: the list itself, or the entry of an
    object keyed by file name (full path, or base name); None when it names no hints."""
    if isinstance(hints, list):
        return hints
    name = str(photo_path).replace("\\", "/").rsplit("/", 1)[-1]
    return hints.get(str(photo_path), hints.get(name))


def protocol_hints(rgb_uint8, count, rng, size=PROTOCOL_SIZE):
    """Zhang et al. 2017's simulated user: `count` size x size squares of the photo, each
    coloured with its mean true ab, the corner drawn from a normal centred in the image
    (standard deviation a quarter of the side) and clipped into it
    (util.add_color_patches_rand_gt of richzhang/colorization-pytorch)."""
    height, width = rgb_uint8.shape[:2]
    ab = rgb_to_lab_cv2(rgb_uint8)[..., 1:]
    hints = []
    for _ in range(count):
        row = int(np.clip(rng.normal((height - size + 1) / 2, (height - size + 1) / 4),
                          0, height - size))
        col = int(np.clip(rng.normal((width - size + 1) / 2, (width - size + 1) / 4),
                          0, width - size))
        mean = ab[row:row + size, col:col + size].reshape(-1, 2).mean(axis=0)
        hints.append({"x": col + (size - 1) / 2, "y": row + (size - 1) / 2,
                      "ab": [float(mean[0]), float(mean[1])], "size": size})
    return hints


def palette(probabilities, bins, x, y, width, height, count=8):
    """The `count` most likely colours at input pixel (x, y): [(a, b, probability)], from a
    bin distribution [h, w, Q] at stride PALETTE_STRIDE of the working shape that maps onto
    the width x height input (as Zhang et al. 2017's palette of suggested colours)."""
    rows, cols = probabilities.shape[:2]
    col = min(cols - 1, max(0, int((x + 0.5) * cols / width)))
    row = min(rows - 1, max(0, int((y + 0.5) * rows / height)))
    here = probabilities[row, col]
    best = np.argsort(here)[::-1][:count]
    return [(float(bins[i][0]), float(bins[i][1]), float(here[i])) for i in best]
