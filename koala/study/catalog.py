"""The photos of a study: every image file under the real and the colorized folders.

Photos are known to the web page only by an opaque id (a hash of kind and relative path),
never by a path, so a request can name nothing outside the two folders. Ids are stable
across server restarts, which lets one database collect a study run over several sessions.
Images are re-encoded to one format and size when served, so a file's format, size or
metadata cannot give its origin away.
"""

import dataclasses
import functools
import hashlib
import os
import pathlib
import re

import numpy as np
from absl import logging

KINDS = ("real", "colorized")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")
SERVED_MAX_SIDE = 1024  # large enough to judge colours, small enough to load at once
SERVED_JPEG_QUALITY = 92


@dataclasses.dataclass(frozen=True)
class StudyImage:
    id: str
    kind: str  # "real" or "colorized"
    name: str  # path relative to its folder, for results only (never sent to participants)
    path: pathlib.Path


def image_id(kind, name):
    """Stable opaque id of a photo: 16 hex digits of sha256(kind, relative path)."""
    return hashlib.sha256(f"{kind}\0{name}".encode()).hexdigest()[:16]


def scan(folder, kind):
    """StudyImages for the image files under `folder` (recursive, sorted).

    Symlinks that leave the folder are skipped: only files under the folder are served.
    """
    root = pathlib.Path(folder).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{kind} folder {folder} does not exist")
    images = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        resolved = path.resolve()
        if not resolved.is_relative_to(root):
            logging.warning("skipping %s: it points outside %s", path, root)
            continue
        name = path.relative_to(root).as_posix()
        images.append(StudyImage(image_id(kind, name), kind, name, resolved))
    return images


class Catalog:
    """The study's photos by id; serves their re-encoded bytes."""

    def __init__(self, images):
        self.images = {image.id: image for image in images}
        if len(self.images) != len(images):
            raise ValueError("two photos share an id")

    @classmethod
    def from_folders(cls, real_dir, colorized_dir):
        images = scan(real_dir, "real") + scan(colorized_dir, "colorized")
        if not images:
            raise ValueError(f"no photos under {real_dir} or {colorized_dir}")
        return cls(images)

    def __len__(self):
        return len(self.images)

    def get(self, image_id_):
        """The StudyImage of an id, or None (also for anything that is not an id)."""
        if not isinstance(image_id_, str) or not ID_PATTERN.match(image_id_):
            return None
        return self.images.get(image_id_)

    @functools.lru_cache(maxsize=256)
    def jpeg_bytes(self, image_id_):
        """The photo as JPEG bytes, longest side at most SERVED_MAX_SIDE (cached)."""
        import cv2  # imported late: the catalog is also used by `koala study results`

        bgr = cv2.imread(str(self.images[image_id_].path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot decode {self.images[image_id_].path}")
        scale = SERVED_MAX_SIDE / max(bgr.shape[:2])
        if scale < 1:
            size = (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale))
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, SERVED_JPEG_QUALITY])
        if not ok:
            raise ValueError(f"cannot encode {self.images[image_id_].path}")
        return encoded.tobytes()


def gray_version(rgb_uint8):
    """The photo with its colour removed: Lab L kept, a = b = 0 (what a colorizer sees)."""
    from koala import color  # imported late: it loads TensorFlow

    lab = color.rgb_to_lab_cv2(rgb_uint8)
    lab[..., 1:] = 0.0
    return np.round(color.lab_to_rgb_cv2(lab) * 255.0).astype(np.uint8)


def colorize_folder(real_dir, cache_dir, model):
    """Colorize the gray version of every real photo with `model` into `cache_dir`.

    Files already in the cache are kept, so restarting the server costs nothing; each new
    file is written under a temporary name and renamed, so a killed run leaves no half file.
    Returns the number of photos colorized now.
    """
    import cv2

    from koala.colorize import colorize  # imported late: it loads TensorFlow and the model

    cache_dir = pathlib.Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    made = 0
    for image in scan(real_dir, "real"):
        target = cache_dir / (pathlib.PurePosixPath(image.name).with_suffix(".png"))
        if target.exists():
            continue
        rgb = cv2.cvtColor(cv2.imread(str(image.path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        colorized = np.asarray(colorize(gray_version(rgb), model=model), dtype=np.uint8)
        target.parent.mkdir(parents=True, exist_ok=True)
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(colorized, cv2.COLOR_RGB2BGR))
        if not ok:
            raise ValueError(f"cannot encode the colorized {image.name}")
        partial = target.with_name(target.name + ".partial")  # not an image suffix: never scanned
        partial.write_bytes(encoded.tobytes())
        os.replace(partial, target)
        made += 1
        logging.info("colorized %s with %s", image.name, model)
    return made
