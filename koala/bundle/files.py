"""A bundle on disk, read without TensorFlow or Keras: its file names, where "default" lives,
resolving a name or run directory, its koala.json, and which LiteRT copy is current.

The LiteRT path of `koala colorize` reads bundles through this module only: importing
TensorFlow costs ~3.7 s and ~1 GB here, this module nothing. A gs:// or ram:// path is read
through tf.io.gfile, imported only then.

A .tflite records the SHA-256 of the model.keras it was converted from (model.tflite.json);
a bundle retrained in place no longer matches it. Copies converted on first use live in the
cache, named by that SHA-256.
"""

import dataclasses
import hashlib
import json
import pathlib
import posixpath

from koala import paths

KERAS_FILE = "model.keras"
META_FILE = "koala.json"
TFLITE_FILE = "model.tflite"
TFLITE_INFO_FILE = "model.tflite.json"  # {"keras_sha256", "weights", "parity_vs_keras"}
DEFAULT_DIR = pathlib.Path(__file__).resolve().parents[1] / "weights" / "default"
OUTPUT_KINDS = ("regression", "classification", "binned")
COLOR_SPACES = ("lab", "yuv")


@dataclasses.dataclass
class BundleInfo:
    """What koala.json says about a bundle, and where it is."""

    meta: dict
    path: object  # pathlib.Path, or a str for a gs:// / ram:// URL

    @property
    def name(self):
        return self.meta.get("name", posixpath.basename(str(self.path).rstrip("/")))

    @property
    def size(self):
        """Working size (square) the model was trained at."""
        return int(self.meta["size"])

    @property
    def takes_hints(self):
        """Whether the model has a colour-hint input (koala.hints)."""
        return bool(self.meta.get("hints", False))


def join(directory, name):
    """Local paths stay pathlib.Path; gs://, ram:// stay strings (pathlib drops a slash)."""
    return posixpath.join(str(directory), name) if paths.is_url(directory) else \
        pathlib.Path(directory) / name


def _exists(path):
    if paths.is_url(path):
        import tensorflow as tf  # noqa: PLC0415 (URLs only)

        return tf.io.gfile.exists(str(path))
    return pathlib.Path(path).is_file()


def resolve(name_or_path, model_files=(KERAS_FILE,)):
    """'default' -> the shipped bundle; a run directory -> its `bundle/` if it has one.

    The bundle must hold koala.json and one of `model_files`. Any tf.io.gfile URL works
    (gs://bucket/run, ram://run) besides local paths.
    """
    if str(name_or_path) == "default":
        path = DEFAULT_DIR
    elif paths.is_url(name_or_path):
        path = str(name_or_path).rstrip("/")
    else:
        path = pathlib.Path(name_or_path).expanduser()
    if _exists(join(join(path, "bundle"), META_FILE)):
        path = join(path, "bundle")
    if not _exists(join(path, META_FILE)) or not any(
            _exists(join(path, name)) for name in model_files):
        raise FileNotFoundError(
            f"{name_or_path}: not a Koala model (expected {META_FILE} and "
            f"{' or '.join(model_files)} in {path}); pass --model default, a bundle directory, "
            "or a training workdir")
    return path


def read_info(path):
    """The BundleInfo of a resolved bundle directory."""
    return BundleInfo(json.loads(paths.read_text(join(path, META_FILE))), path)


def file_sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def tflite_cache_dir():
    """Where .tflite copies converted on first use live (koala.paths.cache_dir()/tflite)."""
    return paths.cache_dir() / "tflite"


def tflite_is_current(path):
    """Whether bundle `path` has a model.tflite converted from its current model.keras."""
    return current_tflite(path, cached=False) is not None


def current_tflite(path, cached=True):
    """The .tflite converted from local bundle `path`'s current model.keras, or None.

    Looked for in the bundle (model.tflite with a matching model.tflite.json), then in
    the cache, where copies are named by the SHA-256 of their model.keras (~30 ms to hash).
    """
    if paths.is_url(path):
        return None  # LiteRT reads local files; a remote bundle runs through Keras
    path = pathlib.Path(path)
    tflite, keras_file = path / TFLITE_FILE, path / KERAS_FILE
    if not keras_file.is_file():
        return tflite if tflite.is_file() else None  # a LiteRT-only bundle
    digest = file_sha256(keras_file)
    try:
        recorded = json.loads((path / TFLITE_INFO_FILE).read_text()).get("keras_sha256")
    except (OSError, ValueError):
        recorded = None
    if tflite.is_file() and recorded == digest:
        return tflite
    copy = tflite_cache_dir() / f"{digest}.tflite"
    return copy if cached and copy.is_file() else None
