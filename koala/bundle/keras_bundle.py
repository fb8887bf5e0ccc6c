"""A bundle in Keras: save a trained model with its koala.json, load it back by name or path.

Training writes bundles; colorize, evaluate and export read them: a bundle turns its
model's raw output into ab in Lab units (decoded by koala.models.outputs, the one decoder).
File names and resolving live in koala.bundle.files (TensorFlow-free).
"""

import dataclasses
import json
import pathlib

import keras
import tensorflow as tf

from koala import color
from koala import vividness as vividness_lib
from koala.bundle.files import (COLOR_SPACES, KERAS_FILE, META_FILE, OUTPUT_KINDS, BundleInfo,
                                join, resolve)
from koala.models import outputs
from koala.paths import is_url


def height_width(images):
    """(H, W) of [N, H, W, C]: Python ints where static (Bundle.ab_from_output compares
    them with the output's static shape), tensors where not."""
    dynamic = tf.shape(images)
    return tuple(images.shape[i] if images.shape[i] is not None else dynamic[i] for i in (1, 2))


def input_names(model):
    """The names of a Keras model's inputs ("L", and "hints" for a hint model)."""
    return [tensor.name.split(":")[0] for tensor in model.inputs]


def save(directory, model, meta):
    """Writes `model` and its metadata; `meta` needs at least "model", "size", "output"."""
    missing = {"model", "size", "output"} - set(meta)
    if missing:
        raise ValueError(f"bundle metadata lacks {sorted(missing)}")
    if meta["output"] not in OUTPUT_KINDS:
        raise ValueError(f"output must be one of {OUTPUT_KINDS}, not {meta['output']!r}")
    if meta.get("color_space", "lab") not in COLOR_SPACES:
        raise ValueError(f"color_space must be one of {COLOR_SPACES}")
    meta = {"color_space": "lab", "temperature": 0.38, "config": {}, **meta,
            "hints": "hints" in input_names(model)}
    directory = str(directory) if is_url(directory) else pathlib.Path(directory)
    tf.io.gfile.makedirs(str(directory))
    tmp = str(join(directory, KERAS_FILE + ".tmp.keras"))
    model.save(tmp)
    tf.io.gfile.rename(tmp, str(join(directory, KERAS_FILE)), overwrite=True)
    with tf.io.gfile.GFile(str(join(directory, META_FILE)), "w") as stream:
        stream.write(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return directory


@dataclasses.dataclass
class Bundle(BundleInfo):
    """A loaded model with what is needed to turn its output into ab."""

    model: keras.Model = None

    @property
    def has_hint_input(self):
        """Whether the model takes a colour-hint map (koala.hints) besides L."""
        return "hints" in input_names(self.model)

    @property
    def lightness_input(self):
        return self.model.inputs[input_names(self.model).index("L")]

    def model_inputs(self, lightness, hint_map=None):
        """The model's input dict: scaled L, and the hint map (zeros: none) for a hint model."""
        inputs = {"L": self.model_input(lightness)}
        if self.has_hint_input:
            if hint_map is None:
                shape = tf.shape(lightness)
                hint_map = tf.zeros(tf.concat([shape[:3], [3]], 0), tf.float32)
            inputs["hints"] = tf.cast(hint_map, tf.float32)
        return inputs

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


def load(name_or_path="default"):
    """Loads a bundle by name ("default") or path (bundle dir or training workdir)."""
    import koala.models  # noqa: F401  (registers the custom layers that model.keras names)

    path = resolve(name_or_path)
    with tf.io.gfile.GFile(str(join(path, META_FILE))) as stream:
        meta = json.load(stream)
    model = keras.saving.load_model(str(join(path, KERAS_FILE)), compile=False)
    return Bundle(meta=meta, path=path, model=model)

