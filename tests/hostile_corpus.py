"""One corpus of hostile and awkward image files, shared by every entry point's test.

Each entry is built from a real photo (scikit-image's bundled "coffee", shrunk) and says what
must come of it: "ok" with the expected upright sRGB pixels, or "error" with a piece of the
message. The ICC profiles are written here because ImageCms can only create sRGB, Lab and XYZ
profiles: Display P3 (a matrix/TRC ICC v2 profile, the kind cameras and phones embed; ImageCms
converts the photo into it, as a P3 phone would store it) and a CMYK press profile (a lut16
A2B0 table with strong dot gain; the CMYK values are computed here from its model, so that
only a reader that applies the profile gets the photo back).

unreadable.png is chmod 000: root reads it anyway (the capability CAP_DAC_OVERRIDE), so a
door shows "Permission denied" only when it runs without that power (unprivileged()).
"""

import dataclasses
import io
import os
import pathlib
import shutil
import struct
import subprocess
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
    unmanaged: np.ndarray | None = None  # uint8 RGB a reader that ignores the embedded ICC
    # profile shows (the stored values, naively converted); None: no profile


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
    return _profile(b"mntr", b"RGB ", b"XYZ ", [
        (b"desc", _tag_description("Display P3 (Koala test)")),
        (b"wtpt", _tag_xyz((0.9642, 1.0, 0.8249))),
        (b"rXYZ", _tag_xyz((0.515121, 0.241196, -0.001053))),
        (b"gXYZ", _tag_xyz((0.291977, 0.692245, 0.041885))),
        (b"bXYZ", _tag_xyz((0.157104, 0.066574, 0.784073))),
        (b"rTRC", _tag_srgb_curve()), (b"gTRC", _tag_srgb_curve()),
        (b"bTRC", _tag_srgb_curve()),
        (b"cprt", b"text\0\0\0\0public domain\0")])


def _srgb_to_linear(value):
    return np.where(value > 0.04045, ((value + 0.055) / 1.055) ** 2.4, value / 12.92)


def _linear_to_srgb(value):
    value = np.clip(value, 0.0, 1.0)
    return np.where(value > 0.0031308, 1.055 * value ** (1 / 2.4) - 0.055, 12.92 * value)


# sRGB's primaries adapted to the D50 PCS (Bradford), the colorants of every sRGB profile
SRGB_D50 = np.array([[0.436066, 0.385147, 0.143066],
                     [0.222488, 0.716873, 0.060608],
                     [0.013916, 0.097076, 0.714096]])
DOT_GAIN = 2.0  # the press profile's transmittance of a nominal ink coverage c: (1 - c) ** 2
CMYK_GRID = 9  # CLUT points per ink: the profile stays within one JPEG APP2 marker (64 KB)


def _profile(device_class, colour_space, pcs, tags):
    """ICC v2 bytes: a header and the tag table over `tags` [(signature, data)]."""
    offset = 128 + 4 + 12 * len(tags)
    table, body = [], b""
    for signature, data in tags:
        body += b"\0" * (-len(body) % 4)
        table.append(struct.pack(">4sII", signature, offset + len(body), len(data)))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + device_class
              + colour_space + pcs + b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
              + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + b"\0" * 48)
    return header + struct.pack(">I", len(tags)) + b"".join(table) + body


def cmyk_press_profile():
    """ICC v2 bytes of a CMYK output profile ("Koala test press"), a lut16 A2B0 to PCSXYZ.

    Model: each ink's coverage c lets through t = (1 - c) ** DOT_GAIN of the light, read as
    sRGB-encoded (input curves: linear light of t); the CLUT multiplies the C, M, Y
    transmittances by K's and maps them to XYZ through sRGB's D50 colorants. So through this
    profile CMYK becomes (linear) sRGB R = t(C) t(K), G = t(M) t(K), B = t(Y) t(K).
    """
    entries = 1024
    ramp = np.linspace(0.0, 1.0, entries)
    curve = np.round(_srgb_to_linear((1.0 - ramp) ** DOT_GAIN) * 65535).astype(">u2").tobytes()
    axis = np.linspace(0.0, 1.0, CMYK_GRID)
    c, m, y, k = np.meshgrid(axis, axis, axis, axis, indexing="ij")  # first ink slowest
    xyz = np.einsum("ij,...j->...i", SRGB_D50, np.stack([c, m, y], -1)) * k[..., None]
    clut = np.round(xyz * 32768).clip(0, 65535).astype(">u2").tobytes()  # u1Fixed15
    identity = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut = (b"mft2\0\0\0\0" + bytes([4, 3, CMYK_GRID, 0]) + identity
           + struct.pack(">HH", entries, 2) + curve * 4 + clut
           + np.array([0, 65535], ">u2").tobytes() * 3)
    return _profile(b"prtr", b"CMYK", b"XYZ ", [
        (b"desc", _tag_description("Koala test press (CMYK)")),
        (b"wtpt", _tag_xyz((0.9642, 1.0, 0.8249))), (b"A2B0", lut),
        (b"cprt", b"text\0\0\0\0public domain\0")])


def to_press_cmyk(rgb):
    """sRGB uint8 -> uint8 CMYK that cmyk_press_profile turns back into `rgb` (the model's
    inverse, computed here: K takes the darkness out, C, M, Y the rest)."""
    linear = _srgb_to_linear(rgb / 255.0)
    black = linear.max(axis=-1, keepdims=True)  # t(K) in linear light
    share = np.where(black > 0, linear / np.maximum(black, 1e-12), 0.0)  # t(C), t(M), t(Y)

    def coverage(transmittance):  # t = srgb_to_linear((1 - c) ** DOT_GAIN), solved for c
        return 1.0 - _linear_to_srgb(transmittance) ** (1.0 / DOT_GAIN)

    cmyk = np.concatenate([coverage(share), coverage(black)], -1)
    return np.round(cmyk * 255).astype(np.uint8)


def srgb_to_display_p3_16(rgb):
    """sRGB uint8 -> the same colours as 16-bit Display P3 values (D65 matrices, sRGB curve),
    computed here, not by LittleCMS."""
    srgb_to_xyz = np.array([[0.4124564, 0.3575761, 0.1804375],
                            [0.2126729, 0.7151522, 0.0721750],
                            [0.0193339, 0.1191920, 0.9503041]])
    p3_to_xyz = np.array([[0.4865709, 0.2656677, 0.1982173],
                          [0.2289746, 0.6917385, 0.0792869],
                          [0.0000000, 0.0451134, 1.0439444]])
    linear = _srgb_to_linear(rgb / 255.0) @ (np.linalg.inv(p3_to_xyz) @ srgb_to_xyz).T
    return np.round(_linear_to_srgb(linear) * 65535).astype(np.uint16)


def png_with_profile(path, image, profile):
    """Writes `image` (RGB, uint8 or uint16) as a PNG by OpenCV, with an iCCP chunk holding
    `profile` (OpenCV writes none; Pillow writes no 16-bit colour PNG)."""
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    assert ok
    data = encoded.tobytes()
    iccp = b"ICC profile\0\0" + zlib.compress(profile)
    chunk = (struct.pack(">I", len(iccp)) + b"iCCP" + iccp
             + struct.pack(">I", zlib.crc32(b"iCCP" + iccp) & 0xFFFFFFFF))
    end_of_ihdr = 8 + 4 + 4 + 13 + 4
    pathlib.Path(path).write_bytes(data[:end_of_ihdr] + chunk + data[end_of_ihdr:])


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


def unprivileged():
    """A command prefix that runs a door the way an ordinary user reads files: [] when this
    process is not root (file permissions apply to it already); for root, util-linux's
    setpriv dropping the capabilities that bypass them (CAP_DAC_OVERRIDE, _READ_SEARCH), so
    a chmod 000 file is refused while root's own 0700 folders stay open. None (with the
    reason) where root cannot drop them."""
    if os.geteuid() != 0:
        return [], None
    prefix = [shutil.which("setpriv") or "setpriv", "--inh-caps=-all",
              "--bounding-set=-dac_override,-dac_read_search", "--"]
    try:
        subprocess.run([*prefix, "true"], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"root, and setpriv cannot drop CAP_DAC_OVERRIDE here: {error}"
    return prefix, None


def build(folder, bomb=None, unprivileged_reader=False):
    """Writes the corpus into `folder`; returns {name: Entry}. `bomb`: an existing bomb file
    to link (building one takes ~1 s), else one is written. `unprivileged_reader`: the
    outcomes for a door run through unprivileged() (unreadable.png is then refused even
    when this process is root)."""
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
    cmyk = Image.fromarray(to_press_cmyk(base), "CMYK")  # a press file: converted through
    cmyk.save(folder / "cmyk.jpg", quality=95, icc_profile=cmyk_press_profile())  # its profile
    ok("cmyk.jpg", base, tolerance=4.0)
    entries[-1].unmanaged = np.asarray(Image.open(folder / "cmyk.jpg").convert("RGB"))
    Image.fromarray(base).convert("CMYK").save(folder / "cmyk_no_profile.jpg", quality=95)
    ok("cmyk_no_profile.jpg", base, tolerance=4.0)  # no profile: the plain inversion
    cv2.imwrite(str(folder / "rgb16.png"),
                cv2.cvtColor(base, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    ok("rgb16.png", base, tolerance=0.01)
    p3_16 = srgb_to_display_p3_16(base)  # 16-bit with a foreign profile: to sRGB at 8 bits
    png_with_profile(folder / "rgb16_p3.png", p3_16, display_p3_profile())
    ok("rgb16_p3.png", base, tolerance=1.5)
    entries[-1].unmanaged = (p3_16 >> 8).astype(np.uint8)
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
    entries[-1].unmanaged = np.asarray(p3_image)
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
    if os.geteuid() == 0 and not unprivileged_reader:  # root reads any file: a photo
        ok("unreadable.png", base, tolerance=0.01)
    else:
        error("unreadable.png", "Permission denied")
    return {entry.name: entry for entry in entries}


def check(entry, image):
    """Asserts that a reader's uint8 RGB result matches an "ok" entry."""
    assert image.shape == entry.expected.shape, (entry.name, image.shape)
    difference = np.abs(image.astype(np.float64) - entry.expected).mean()
    assert difference <= entry.tolerance, (entry.name, difference)
