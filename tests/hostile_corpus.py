"""One corpus of hostile and awkward image files, shared by every entry point's test.

Each entry is built from a real photo (scikit-image's bundled "coffee", shrunk) and says what
must come of it: "ok" with the expected upright sRGB pixels, or "error" with a piece of the
message. The Display-P3 profile is written here (a matrix/TRC ICC v2 profile, the kind
cameras and phones embed) because ImageCms can only create sRGB, Lab and XYZ profiles;
ImageCms then converts the photo into it, as a P3 phone would store it.
"""

import dataclasses
import io
import os
import pathlib
import struct
import zlib

import cv2
import numpy as np
from PIL import Image, ImageCms

BOMB_SIDE = 20_000  # a 20000 x 20000 gray PNG: ~0.4 MB on disk, 400 MP decoded


@dataclasses.dataclass
class Entry:
    name: str  # file (or folder) name in the corpus folder
    outcome: str  # "ok" or "error"
    expected: np.ndarray | None = None  # the upright sRGB uint8 RGB a reader must return
    message: str = ""  # for errors: a piece of the one-line message (the file is named too)
    tolerance: float = 2.0  # mean absolute error allowed against `expected`, 8-bit levels


def base_photo(height=48, width=72):
    """A real photo (scikit-image's coffee cup), shrunk by area averaging: uint8 RGB."""
    from skimage import data  # noqa: PLC0415 (bundled with scikit-image, offline)

    return cv2.resize(data.coffee(), (width, height), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------- ICC profiles

def _s15(value):
    return struct.pack(">i", round(value * 65536))


def _tag_xyz(xyz):
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in xyz)


def _tag_srgb_curve(points=1024):
    x = np.linspace(0.0, 1.0, points)
    y = np.where(x > 0.04045, ((x + 0.055) / 1.055) ** 2.4, x / 12.92)
    return (b"curv\0\0\0\0" + struct.pack(">I", points)
            + np.round(y * 65535).astype(">u2").tobytes())


def _tag_description(text):
    ascii_text = text.encode("ascii") + b"\0"
    return (b"desc\0\0\0\0" + struct.pack(">I", len(ascii_text)) + ascii_text
            + b"\0" * 8 + b"\0\0" + b"\0" + b"\0" * 67)


def display_p3_profile():
    """ICC v2 bytes of Display P3 (P3 primaries, D65 white, sRGB curve), as Apple's.

    Colorants are the primaries adapted to the D50 PCS by Bradford, the figures of Apple's
    Display P3 profile.
    """
    tags = [(b"desc", _tag_description("Display P3 (Koala test)")),
            (b"wtpt", _tag_xyz((0.9642, 1.0, 0.8249))),
            (b"rXYZ", _tag_xyz((0.515121, 0.241196, -0.001053))),
            (b"gXYZ", _tag_xyz((0.291977, 0.692245, 0.041885))),
            (b"bXYZ", _tag_xyz((0.157104, 0.066574, 0.784073))),
            (b"rTRC", _tag_srgb_curve()), (b"gTRC", _tag_srgb_curve()),
            (b"bTRC", _tag_srgb_curve()),
            (b"cprt", b"text\0\0\0\0public domain\0")]
    offset = 128 + 4 + 12 * len(tags)
    table, body = [], b""
    for signature, data in tags:
        body += b"\0" * (-len(body) % 4)
        table.append(struct.pack(">4sII", signature, offset + len(body), len(data)))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntr"
              + b"RGB XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
              + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + b"\0" * 48)
    return header + struct.pack(">I", len(tags)) + b"".join(table) + body


def to_display_p3(rgb):
    """sRGB uint8 -> (the same colours encoded in Display P3, the profile bytes), by ImageCms."""
    profile_bytes = display_p3_profile()
    p3 = ImageCms.ImageCmsProfile(io.BytesIO(profile_bytes))
    image = ImageCms.profileToProfile(Image.fromarray(rgb), ImageCms.createProfile("sRGB"), p3,
                                      outputMode="RGB")
    return image, profile_bytes


# --------------------------------------------------------------------------- bombs

def write_png_bomb(path, side=BOMB_SIDE):
    """A valid side x side 8-bit gray PNG of zeros, streamed (never held in memory)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    compressor, row = zlib.compressobj(9), b"\0" * (side + 1)  # filter byte + pixels
    rows_per_piece = 256
    idat = b"".join(compressor.compress(row * rows_per_piece)
                    for _ in range(side // rows_per_piece))
    idat += compressor.compress(row * (side % rows_per_piece)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    pathlib.Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                                   + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


# --------------------------------------------------------------------------- the corpus

def _rotated_with_exif(base, path):
    stored = Image.fromarray(base).transpose(Image.Transpose.ROTATE_90)  # shown after 6
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, quality=95, exif=exif)


def _frames(base, path, fmt):
    frames = [Image.fromarray(base), Image.fromarray(255 - base)]
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:])


def build(folder, bomb=None):
    """Writes the corpus into `folder`; returns {name: Entry}. `bomb`: an existing bomb file
    to link (building one takes ~1 s), else one is written."""
    folder = pathlib.Path(folder)
    base = base_photo()
    gray = cv2.cvtColor(base, cv2.COLOR_RGB2GRAY)
    entries = []

    def ok(name, expected, tolerance=2.0):
        entries.append(Entry(name, "ok", expected, tolerance=tolerance))

    def error(name, message):
        entries.append(Entry(name, "error", message=message))

    (folder / "empty.jpg").write_bytes(b"")
    error("empty.jpg", "empty file")
    jpeg = io.BytesIO()
    Image.fromarray(base).save(jpeg, "JPEG", quality=95)
    (folder / "truncated.jpg").write_bytes(jpeg.getvalue()[:len(jpeg.getvalue()) // 2])
    error("truncated.jpg", "truncated or corrupt")
    (folder / "notes.jpg").write_text("this is a text file, not a photo\n")
    error("notes.jpg", "not an image")
    Image.fromarray(base).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    ok("cmyk.jpg", base, tolerance=4.0)
    cv2.imwrite(str(folder / "rgb16.png"),
                cv2.cvtColor(base, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    ok("rgb16.png", base, tolerance=0.01)
    cv2.imwrite(str(folder / "gray16.png"), gray.astype(np.uint16) * 257)
    ok("gray16.png", np.dstack([gray] * 3), tolerance=0.01)
    rgba = np.dstack([base, np.full(gray.shape, 255, np.uint8)])
    Image.fromarray(rgba).save(folder / "rgba.png")
    ok("rgba.png", base, tolerance=0.01)
    Image.fromarray(np.dstack([gray, np.full(gray.shape, 255, np.uint8)]), "LA").save(
        folder / "gray_alpha.png")
    ok("gray_alpha.png", np.dstack([gray] * 3), tolerance=0.01)
    palette = Image.fromarray(base).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    palette.save(folder / "palette.png")
    ok("palette.png", np.asarray(palette.convert("RGB")), tolerance=0.01)
    _rotated_with_exif(base, folder / "exif_rotated.jpg")
    ok("exif_rotated.jpg", base, tolerance=5.0)
    p3_image, profile = to_display_p3(base)
    p3_image.save(folder / "display_p3.png", icc_profile=profile)
    ok("display_p3.png", base, tolerance=1.5)
    if bomb is None:
        write_png_bomb(folder / "huge.png")
    else:
        os.link(bomb, folder / "huge.png")
    error("huge.png", f"{BOMB_SIDE}x{BOMB_SIDE}")
    _frames(base, folder / "animated.gif", "GIF")
    ok("animated.gif", base, tolerance=8.0)  # GIF's 256-colour palette
    _frames(base, folder / "pages.tif", "TIFF")
    ok("pages.tif", base, tolerance=0.01)
    (folder / "photo.jpg").mkdir()
    (folder / "photo.jpg" / "README.txt").write_text("a folder with an image's name\n")
    (folder / "dangling.jpg").symlink_to(folder / "gone.jpg")
    error("dangling.jpg", "No such file")
    (folder / "loop_a.jpg").symlink_to(folder / "loop_b.jpg")
    (folder / "loop_b.jpg").symlink_to(folder / "loop_a.jpg")
    error("loop_a.jpg", "symbolic links")
    error("loop_b.jpg", "symbolic links")
    Image.fromarray(base).save(folder / "unreadable.png")
    os.chmod(folder / "unreadable.png", 0)
    if os.geteuid() == 0:  # root reads any file: the entry is then an ordinary photo
        ok("unreadable.png", base, tolerance=0.01)
    else:
        error("unreadable.png", "Permission denied")
    return {entry.name: entry for entry in entries}


def check(entry, image):
    """Asserts that a reader's uint8 RGB result matches an "ok" entry."""
    assert image.shape == entry.expected.shape, (entry.name, image.shape)
    difference = np.abs(image.astype(np.float64) - entry.expected).mean()
    assert difference <= entry.tolerance, (entry.name, difference)
