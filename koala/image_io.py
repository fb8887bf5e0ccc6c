"""Read and write image files safely: the one reader of the package, free of TensorFlow.

Every door (colorize, evaluate, records, the study, the app) reads through `decode`, so the
same rules hold everywhere:
- the pixel count comes from the header (Pillow's lazy open reads nothing else) and a file
  above `max_pixels` is refused before a single pixel is decoded: a 400 KB PNG can declare
  20000 x 20000 pixels, 1.2 GB decoded as RGB;
- OpenCV decodes (it keeps 16-bit depth and alpha, which Pillow drops for colour images);
  Pillow supplies what OpenCV ignores: EXIF orientation, the embedded ICC profile, and CMYK
  through its profile;
- colours come out as sRGB: an embedded non-sRGB profile (Display P3, Adobe RGB, a CMYK
  press profile) is converted by LittleCMS (PIL.ImageCms), so the lightness the models see
  is the photo's real lightness.
Only numpy, OpenCV and Pillow are imported: a TensorFlow-free runtime can use this module.
"""

import glob
import io
import os
import pathlib
import warnings

import cv2
import numpy as np
from absl import logging
from PIL import Image, ImageCms, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                            ".ppm"})
DEFAULT_MAX_PIXELS = 150_000_000  # generous for scans (a 600 dpi A3 page is 70 MP)
MAX_PIXELS_FLAG = "--max_pixels"
_EXIF_ORIENTATION = 0x0112


class UnreadableImage(ValueError):
    """The file is missing, not an image, or in a format that cannot be decoded."""

    reason = "unreadable"


class NotAnImage(UnreadableImage):
    reason = "not_an_image"


class CorruptImage(UnreadableImage):
    reason = "corrupt"


class ImageTooLarge(UnreadableImage):
    """The header declares more pixels than the limit: refused before decoding."""

    reason = "too_large"


def read_image(path, max_pixels=DEFAULT_MAX_PIXELS):
    """An image file -> upright sRGB array: gray [H, W], RGB or RGBA; uint8 or uint16.

    The header is checked before the rest of the file is even read. Missing files, folders,
    unreadable files and symlink loops raise UnreadableImage naming the file.
    """
    path = pathlib.Path(path)
    try:
        with open(path, "rb") as file:
            open_header(file, path, max_pixels)
            file.seek(0)
            data = file.read()
    except OSError as error:
        raise UnreadableImage(f"{path}: {error.strerror or error}") from error
    return decode(data, path, max_pixels)


def decode(data, name="<bytes>", max_pixels=DEFAULT_MAX_PIXELS, draft_size=None):
    """Encoded bytes -> upright sRGB array (see the module note); `name` is for errors only.

    draft_size: the caller will shrink to about this size, so a JPEG at least twice as
    large is decoded by libjpeg at 1/2, 1/4 or 1/8 scale (up to 8x faster on big photos).
    """
    header = open_header(io.BytesIO(data), name, max_pixels)
    return _decode_checked(data, header, name, draft_size)


def _decode_checked(data, header, name, draft_size=None):
    profile = header.info.get("icc_profile")
    try:
        if header.mode == "CMYK":
            image = _cmyk_to_rgb(Image.open(io.BytesIO(data)), profile)
        elif (draft_size and header.format == "JPEG" and header.mode in ("RGB", "L")
              and min(header.size) >= 2 * draft_size):
            header.draft(header.mode, (draft_size, draft_size))
            image = _to_srgb(np.asarray(header.convert(header.mode)), profile, name)
        else:
            image = _to_srgb(_decode_cv2(data, name), profile, name)
        orientation = int(header.getexif().get(_EXIF_ORIENTATION, 1))
    except UnreadableImage:
        raise
    except Exception as error:  # noqa: BLE001 (truncated data, broken chunks, bad profiles)
        raise CorruptImage(f"{name}: {type(error).__name__}: {error}") from None
    return _apply_orientation(image, orientation)


def open_header(file, name="<bytes>", max_pixels=DEFAULT_MAX_PIXELS):
    """Pillow's lazy image of an open binary file (header only) after the pixel-limit check.

    Raises UnreadableImage (NotAnImage, CorruptImage, ImageTooLarge) naming `name`.
    """
    if not file.read(1):
        raise NotAnImage(f"{name}: empty file (0 bytes)")
    file.seek(0)
    try:
        header = _open_lazily(file)
    except UnidentifiedImageError:
        raise NotAnImage(f"{name}: not an image (unknown format)") from None
    except Exception as error:  # noqa: BLE001 (Pillow raises many types on broken headers)
        raise CorruptImage(f"{name}: broken header: {type(error).__name__}: {error}") from None
    width, height = header.size
    if width * height > max_pixels:
        raise ImageTooLarge(_too_large(name, f"{width}x{height}", max_pixels))
    return header


def _open_lazily(file):
    """Image.open without Pillow's fixed bomb limit: Koala applies the user's (--max_pixels).

    Image.open checks its limit after the format's plugin has parsed the header, so past
    that limit the plugin is asked directly, as Image.open itself does.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(file)
    except Image.DecompressionBombError:  # above 2 x Pillow's limit (179 MP)
        file.seek(0)
        prefix = file.read(16)
        for format_id in Image.ID:
            factory, accept = Image.OPEN[format_id]
            if accept is None or accept(prefix):
                file.seek(0)
                return factory(file)
        raise


def check_pixels(name, height, width, max_pixels=DEFAULT_MAX_PIXELS):
    """Raise ImageTooLarge when height x width exceeds the limit (for arrays and frames)."""
    if height * width > max_pixels:
        raise ImageTooLarge(_too_large(name, f"{width}x{height}", max_pixels))


def _too_large(name, size, max_pixels):
    return (f"{name}: {size} pixels exceeds the limit of {max_pixels} pixels "
            f"(raise it with {MAX_PIXELS_FLAG})")


def _decode_cv2(data, name):
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise CorruptImage(f"{name}: not a decodable image (truncated or corrupt)")
    if image.dtype not in (np.uint8, np.uint16):
        image = (np.clip(image, 0.0, 1.0) * 65535 + 0.5).astype(np.uint16)
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return image


def _srgb_profile():
    return ImageCms.createProfile("sRGB")


def _cms_profile(profile_bytes):
    """The embedded profile, or None when absent or sRGB already (a conversion is a no-op)."""
    if not profile_bytes:
        return None
    profile = ImageCms.ImageCmsProfile(io.BytesIO(profile_bytes))
    description = ImageCms.getProfileDescription(profile) or ""
    return None if description.strip().lower().startswith("srgb") else profile


def _cmyk_to_rgb(header, profile_bytes):
    """CMYK through its embedded profile (LittleCMS); without one, Pillow's plain inversion."""
    header.load()
    profile = _cms_profile(profile_bytes)
    if profile is None:
        return np.asarray(header.convert("RGB"))
    converted = ImageCms.profileToProfile(header, profile, _srgb_profile(), outputMode="RGB",
                                          renderingIntent=ImageCms.Intent.PERCEPTUAL)
    return np.asarray(converted)


def _to_srgb(image, profile_bytes, name):
    """RGB(A) array tagged with a non-sRGB profile -> sRGB (alpha kept); gray is left as is.

    ImageCms transforms 8-bit images only, so a 16-bit colour photo with a foreign profile
    is converted at 8 bits (colour right, depth lost; logged): rare, and better than wrong.
    """
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        return image
    profile = _cms_profile(profile_bytes)
    if profile is None:
        return image
    rgb, alpha = image[..., :3], image[..., 3:]
    if rgb.dtype == np.uint16:
        logging.warning("%s: 16-bit colour with an ICC profile: converted to sRGB at 8 bits", name)
        rgb, alpha = (rgb >> 8).astype(np.uint8), (alpha >> 8).astype(np.uint8)
    converted = ImageCms.profileToProfile(Image.fromarray(np.ascontiguousarray(rgb)), profile,
                                          _srgb_profile(), outputMode="RGB")
    out = np.asarray(converted)
    return np.dstack([out, alpha]) if alpha.size else out


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


def to_rgb8(image):
    """Array as image_io reads it (gray, gray+alpha, RGB, RGBA; uint8 or uint16) -> uint8 RGB.

    The depth comes from the dtype (16-bit is scaled by 1/257, never guessed from the
    values); alpha is composited over white.
    """
    image = np.asarray(image)
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 or uint16 image, got {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] in (1, 2):  # gray, gray+alpha
        image = np.concatenate([np.repeat(image[..., :1], 3, -1), image[..., 1:]], -1)
    if image.shape[-1] == 4:
        alpha = image[..., 3:].astype(np.uint32)
        image = ((image[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def write_image(path, image):
    """RGB(A) uint8/uint16 array -> file; JPEG gets 8-bit RGB (it holds no alpha, no 16 bits)."""
    path = pathlib.Path(path)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        if image.dtype == np.uint16:
            image = (image >> 8).astype(np.uint8)
        image = image[..., :3]
    if image.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if image.shape[-1] == 4 else cv2.COLOR_RGB2BGR
        image = cv2.cvtColor(image, code)
    ok, encoded = cv2.imencode(path.suffix, image)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode {path.suffix}")
    encoded.tofile(path)


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
        if path.is_dir():  # non-folders are kept so that the reader names broken links
            found += [(path, p) for p in sorted(path.rglob("*"))
                      if not p.is_dir() and p.suffix.lower() in suffixes]
        elif path.is_file():
            found.append((path.parent, path))
        else:
            matches = [pathlib.Path(m) for m in sorted(glob.glob(item, recursive=True))]
            found += [(m.parent, m) for m in matches if not m.is_dir()]
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
    inputs = {os.path.realpath(path) for _, path in found}  # realpath survives symlink loops
    taken = set()
    pairs = []
    for root, path in found:
        suffix = path.suffix if path.suffix.lower() in VIDEO_SUFFIXES else extension
        target = (output_dir / path.relative_to(root)).with_suffix(suffix)
        candidate, counter = target, 0
        while (os.path.realpath(candidate) in inputs or os.path.realpath(candidate) in taken
               or (candidate.exists() and not overwrite)):
            counter += 1
            candidate = target.with_name(f"{target.stem}-{counter}{target.suffix}")
        taken.add(os.path.realpath(candidate))
        pairs.append((path, candidate))
    return pairs
