"""A trained model on disk: `model.keras` plus `koala.json`, loadable by name or path.

Training writes bundles; colorize, evaluate and export read them: a bundle turns its
model's raw output into ab in Lab units (decoded by koala.models.outputs, the one decoder).
The name "default" is the model shipped inside the package (koala/weights/default/).
"""

import dataclasses
import json
import os
import pathlib
import posixpath

import keras
import tensorflow as tf

from koala import color
from koala import vividness as vividness_lib
from koala.models import outputs
from koala.paths import is_url

MODEL_FILE = "model.keras"
META_FILE = "koala.json"
DEFAULT_DIR = pathlib.Path(__file__).resolve().parent / "weights" / "default"
OUTPUT_KINDS = ("regression", "classification", "binned")
COLOR_SPACES = ("lab", "yuv")


def _join(directory, name):
    """Local paths stay pathlib.Path; gs://, ram:// stay strings (pathlib drops a slash)."""
    return posixpath.join(str(directory), name) if is_url(directory) else \
        pathlib.Path(directory) / name


def resolve(name_or_path):
    """'default' -> the shipped bundle; a run directory -> its `bundle/` if it has one.

    Any tf.io.gfile URL works (gs://bucket/run, ram://run) besides local paths.
    """
    if str(name_or_path) == "default":
        path = DEFAULT_DIR
    elif is_url(name_or_path):
        path = str(name_or_path).rstrip("/")
    else:
        path = pathlib.Path(name_or_path).expanduser()
    if tf.io.gfile.exists(str(_join(_join(path, "bundle"), META_FILE))):
        path = _join(path, "bundle")
    if not all(tf.io.gfile.exists(str(_join(path, name))) for name in (META_FILE, MODEL_FILE)):
        raise FileNotFoundError(
            f"{name_or_path}: not a Koala model (expected {MODEL_FILE} and {META_FILE} in "
            f"{path}); pass --model default, a bundle directory, or a training workdir")
    return path


def save(directory, model, meta):
    """Writes `model` and its metadata; `meta` needs at least "model", "size", "output"."""
    missing = {"model", "size", "output"} - set(meta)
    if missing:
        raise ValueError(f"bundle metadata lacks {sorted(missing)}")
    if meta["output"] not in OUTPUT_KINDS:
        raise ValueError(f"output must be one of {OUTPUT_KINDS}, not {meta['output']!r}")
    if meta.get("color_space", "lab") not in COLOR_SPACES:
        raise ValueError(f"color_space must be one of {COLOR_SPACES}")
    meta = {"color_space": "lab", "temperature": 0.38, "config": {}, **meta}
    directory = str(directory) if is_url(directory) else pathlib.Path(directory)
    tf.io.gfile.makedirs(str(directory))
    tmp = str(_join(directory, MODEL_FILE + ".tmp.keras"))
    model.save(tmp)
    tf.io.gfile.rename(tmp, str(_join(directory, MODEL_FILE)), overwrite=True)
    with tf.io.gfile.GFile(str(_join(directory, META_FILE)), "w") as stream:
        stream.write(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return directory


@dataclasses.dataclass
class Bundle:
    """A loaded model with what is needed to turn its output into ab."""

    model: keras.Model
    meta: dict
    path: object  # pathlib.Path, or a str for a gs:// / ram:// URL

    @property
    def size(self):
        """Working size (square) the model was trained at."""
        return int(self.meta["size"])

    @property
    def name(self):
        return self.meta.get("name", os.path.basename(str(self.path).rstrip("/")))

    @property
    def color_space(self):
        return self.meta.get("color_space", "lab")

    def model_input(self, lightness):
        """L in Lab units -> what the model reads: L/50 - 1, or Y*2 - 1 for YUV models."""
        if self.color_space == "yuv":  # a gray pixel's Y is its sRGB gray level
            gray = color.lab_to_rgb(tf.pad(lightness, [[0, 0]] * 3 + [[0, 2]]))[..., :1]
            return gray * 2.0 - 1.0
        return color.scale_l(lightness)

    def ab_from_output(self, output, height, width, lightness=None, vividness=None):
        """Raw model output -> ab in Lab units at (height, width).

        YUV models also need the `lightness` [N, height, width, 1] (Lab units) they saw.
        `vividness` (0..1, None: the model's default) applies to models with that control.
        """
        output = vividness_lib.select(output, vividness, self.meta.get("vividness"))
        kind = self.meta["output"]
        temperature = self.meta["temperature"] if kind == "classification" else None
        ab = outputs.to_target(output, kind, (height, width), temperature)  # model units
        if self.color_space == "yuv":
            y = (self.model_input(lightness) + 1.0) / 2.0
            rgb = color.yuv_to_rgb(tf.concat([y, ab * color.UV_SCALE], -1))
            return color.rgb_to_lab(rgb)[..., 1:]
        return color.unscale_ab(ab)

    def predict_ab(self, lightness):
        """L in Lab units [N, h, w, 1] (any h, w the model accepts) -> ab [N, h, w, 2]."""
        lightness = tf.convert_to_tensor(lightness, tf.float32)
        output = self.model({"L": self.model_input(lightness)}, training=False)
        height, width = lightness.shape[1], lightness.shape[2]
        return self.ab_from_output(output, height, width, lightness).numpy()


def load(name_or_path="default"):
    """Loads a bundle by name ("default") or path (bundle dir or training workdir)."""
    import koala.models  # noqa: F401  (registers the custom layers that model.keras names)

    path = resolve(name_or_path)
    with tf.io.gfile.GFile(str(_join(path, META_FILE))) as stream:
        meta = json.load(stream)
    model = keras.saving.load_model(str(_join(path, MODEL_FILE)), compile=False)
    return Bundle(model=model, meta=meta, path=path)

