"""The photos of a study: every image file under the real and the colorized folders.

Photos are known to the web page only by an opaque id, never by a path, so a request can
name nothing outside the two folders. An id is an HMAC of kind and relative path under the
study's secret (kept in its SQLite, never served): a participant who knows the file names
still cannot compute which ids are the real photos, two studies over the same folders share
no id, and one study's ids are stable across server restarts (one database can collect a
study run over several sessions). Images are read by koala.image_io (EXIF orientation, ICC
to sRGB, the pixel limit) and re-encoded to one format and size when served, so a file's
format, size, profile or metadata cannot give its origin away.
"""

import dataclasses
import functools
import hashlib
import hmac
import os
import pathlib
import re
import secrets

import numpy as np
from absl import logging

from koala import image_io
from koala.image_io import IMAGE_SUFFIXES
from koala.photo import gray_version

KINDS = ("real", "colorized")
ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")
SERVED_MAX_SIDE = 1024  # large enough to judge colours, small enough to load at once
SERVED_JPEG_QUALITY = 92


@dataclasses.dataclass(frozen=True)
class StudyImage:
    id: str
    kind: str  # "real" or "colorized"
    name: str  # path relative to its folder, for results only (never sent to participants)
    path: pathlib.Path


def image_id(secret, kind, name):
    """Opaque id of a photo: 16 hex digits of HMAC-SHA256(secret, kind, relative path)."""
    return hmac.new(secret, f"{kind}\0{name}".encode(), hashlib.sha256).hexdigest()[:16]


def image_files(folder, kind):
    """[(relative name, resolved path)] of the image files under `folder` (recursive, sorted).

    Symlinks that leave the folder (or loop) are skipped: only files under it are served.
    """
    root = pathlib.Path(folder).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{kind} folder {folder} does not exist")
    files = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.is_dir():
            continue
        if not path.is_file():
            logging.warning("skipping %s: a broken or looping link", path)
            continue
        resolved = path.resolve()
        if not resolved.is_relative_to(root):
            logging.warning("skipping %s: it points outside %s", path, root)
            continue
        files.append((path.relative_to(root).as_posix(), resolved))
    return files


def scan(folder, kind, secret):
    """StudyImages for the image files under `folder`, with ids under the study's secret."""
    return [StudyImage(image_id(secret, kind, name), kind, name, path)
            for name, path in image_files(folder, kind)]


class Catalog:
    """The study's photos by id; serves their re-encoded bytes."""

    def __init__(self, images):
        self.images = {image.id: image for image in images}
        if len(self.images) != len(images):
            raise ValueError("two photos share an id")

    @classmethod
    def from_folders(cls, real_dir, colorized_dir, secret=None, max_pixels=None):
        """secret: the study's (StudyDB.secret(), for ids stable across restarts); None: a
        fresh random one. max_pixels: larger photos are refused when served."""
        secret = secret or secrets.token_bytes(32)
        images = scan(real_dir, "real", secret) + scan(colorized_dir, "colorized", secret)
        if not images:
            raise ValueError(f"no photos under {real_dir} or {colorized_dir}")
        catalog = cls(images)
        catalog.max_pixels = max_pixels or image_io.DEFAULT_MAX_PIXELS
        return catalog

    max_pixels = image_io.DEFAULT_MAX_PIXELS

    def __len__(self):
        return len(self.images)

    def get(self, image_id_):
        """The StudyImage of an id, or None (also for anything that is not an id)."""
        if not isinstance(image_id_, str) or not ID_PATTERN.match(image_id_):
            return None
        return self.images.get(image_id_)

    @functools.lru_cache(maxsize=256)
    def jpeg_bytes(self, image_id_):
        """The photo as JPEG bytes, longest side at most SERVED_MAX_SIDE (cached).

        Raises image_io.UnreadableImage (naming the file) for a file that cannot be served.
        """
        import cv2  # imported late: the catalog is also used by `koala study results`

        path = self.images[image_id_].path
        bgr = cv2.cvtColor(_read_rgb(path, self.max_pixels), cv2.COLOR_RGB2BGR)
        scale = SERVED_MAX_SIDE / max(bgr.shape[:2])
        if scale < 1:
            size = (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale))
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, SERVED_JPEG_QUALITY])
        if not ok:
            raise ValueError(f"cannot encode {self.images[image_id_].path}")
        return encoded.tobytes()


def _read_rgb(path, max_pixels=image_io.DEFAULT_MAX_PIXELS):
    """uint8 sRGB [H, W, 3] of any photo (16-bit scaled, alpha over white, gray expanded)."""
    return image_io.to_rgb8(image_io.read_image(path, max_pixels))


def colorize_folder(real_dir, cache_dir, model, vividness=None):
    """Colorize the gray version of every real photo with `model` into `cache_dir`
    (at `vividness`, None: the model's default).

    Files already in the cache are kept, so restarting the server costs nothing; each new
    file is written under a temporary name and renamed, so a killed run leaves no half file.
    Returns the number of photos colorized now.
    """
    import cv2

    from koala.inference.colorizer import colorize  # late: it loads TensorFlow and the model

    cache_dir = pathlib.Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    made = 0
    for name, path in image_files(real_dir, "real"):
        target = cache_dir / (pathlib.PurePosixPath(name).with_suffix(".png"))
        if target.exists():
            continue
        try:
            rgb = _read_rgb(path)
        except image_io.UnreadableImage as error:
            logging.warning("not colorized: %s", error)  # the error names the file
            continue
        colorized = np.asarray(colorize(gray_version(rgb), model=model, vividness=vividness),
                               dtype=np.uint8)
        target.parent.mkdir(parents=True, exist_ok=True)
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(colorized, cv2.COLOR_RGB2BGR))
        if not ok:
            raise ValueError(f"cannot encode the colorized {name}")
        partial = target.with_name(target.name + ".partial")  # not an image suffix: never scanned
        partial.write_bytes(encoded.tobytes())
        os.replace(partial, target)
        made += 1
        logging.info("colorized %s with %s", name, model)
    return made
