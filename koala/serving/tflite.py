"""A bundle's model as a TFLite flatbuffer (built-in ops only), for phones and LiteRT.

The file maps L at a working shape to ab (koala.inference.runtime runs it without
TensorFlow); its parity with the Keras model is measured on real photos and recorded.
`koala export --format tflite` without --output adds model.tflite to the bundle itself
(add_tflite_to_bundle): `koala colorize` then runs that bundle in LiteRT.
"""

import json
import pathlib

import numpy as np
import tensorflow as tf
from absl import logging

from koala import color, image_io
from koala import photo as photo_lib
from koala.bundle import files
from koala.bundle.conversion import convert_tflite
from koala.inference import colorizer as colorizer_lib
from koala.inference import runtime
from koala.serving import graph

TFLITE_FILE = files.TFLITE_FILE
TFLITE_INT8_FILE = "model_int8.tflite"
# A bundle's own .tflite: float32 weights. float16 halves the file (default model: 9.7 MB
# instead of 19.3 MB) but differed from Keras by up to 3 levels of 8 bits (max ab 1.46) on
# 11 benchmark photos, float32 by at most 1 level.
BUNDLE_TFLITE_WEIGHTS = "float32"


# --------------------------------------------------------------------------- parity

def tflite_ab(model_bytes, lightness):
    """Runs a TFLite export on L [N, h, w, 1] (Lab units) through LiteRT -> ab."""
    return runtime.LiteRTRuntime(model_bytes).ab(lightness)


def working_size_lightness(paths, size):
    """L [N, size, size, 1] in [0, 100] of real photos, resized as the exports resize them."""
    images = []
    for path in paths:
        rgb = graph.decode_rgb(tf.io.read_file(str(path)))
        lightness = color.rgb_to_lab(tf.cast(rgb, tf.float32) / 255.0)[None, ..., :1]
        images.append(tf.image.resize(lightness, (size, size), method="area"))
    return tf.concat(images, axis=0).numpy()


def tflite_parity(bundle, model_bytes, photo_paths):
    """A TFLite export vs the Keras model on real photos, each at its own working shape.

    max/mean_ab_diff: |ab| in Lab units at the working shape; max_level_diff: the largest
    difference of the full-resolution 8-bit colorizations, what a person would see.
    """
    keras_colorizer = colorizer_lib.Colorizer(bundle)
    lite = runtime.LiteRTRuntime(model_bytes)
    ab_diffs, level_diff = [], 0
    for path in photo_paths:
        photo = photo_lib.split(image_io.read_image(path))
        small = keras_colorizer.small_lightness(photo.lightness)[0][None, ..., None]
        keras_ab, lite_ab = keras_colorizer.model_ab(small)[0], lite.ab(small)[0]
        ab_diffs.append(np.abs(keras_ab - lite_ab))
        outputs = [photo_lib.recombine(photo.lightness, ab).astype(np.int16)
                   for ab in (keras_ab, lite_ab)]
        level_diff = max(level_diff, int(np.abs(outputs[0] - outputs[1]).max()))
    return {"photos": len(photo_paths), "max_ab_diff": float(max(d.max() for d in ab_diffs)),
            "mean_ab_diff": float(np.mean([d.mean() for d in ab_diffs])),
            "max_level_diff": level_diff}


def default_parity_photos():
    """Real colour photos shipped with scikit-image (offline), when none are given."""
    import skimage.data  # noqa: PLC0415 (only when no photos are given)

    folder = pathlib.Path(skimage.data.__file__).parent
    return [folder / name for name in ("astronaut.png", "chelsea.png", "coffee.png")
            if (folder / name).is_file()]


# --------------------------------------------------------------------------- writing

def write_tflite(bundle, directory, quantize=None, parity_photos=None):
    """Writes model.tflite (and model_int8.tflite when quantized); returns their figures."""
    photos = list(parity_photos or default_parity_photos())
    figures = {}
    files = {TFLITE_FILE: None, **({TFLITE_INT8_FILE: quantize} if quantize else {})}
    for name, mode in files.items():
        model_bytes = convert_tflite(bundle, mode)
        (pathlib.Path(directory) / name).write_bytes(model_bytes)
        figures[name] = {"quantize": mode, "bytes": len(model_bytes),
                         "parity_vs_keras": tflite_parity(bundle, model_bytes, photos)}
        logging.info("%s: %.1f MB, ab difference vs Keras on %d photos: max %.3f, mean %.4f",
                     name, len(model_bytes) / 1e6, len(photos),
                     figures[name]["parity_vs_keras"]["max_ab_diff"],
                     figures[name]["parity_vs_keras"]["mean_ab_diff"])
    return figures


def add_tflite_to_bundle(bundle, weights=BUNDLE_TFLITE_WEIGHTS, parity_photos=None):
    """Writes BUNDLE/model.tflite (+ model.tflite.json) so that colorize runs it in LiteRT.

    model.tflite.json records the SHA-256 of the model.keras converted, its figures and
    parity; a current .tflite is left alone, a stale one (the bundle was retrained) is
    replaced. Returns the figures.
    """
    directory = pathlib.Path(bundle.path)
    if files.tflite_is_current(directory):
        logging.info("%s already has a current %s", directory, TFLITE_FILE)
        return json.loads((directory / files.TFLITE_INFO_FILE).read_text())
    model_bytes = convert_tflite(bundle, weights=weights)
    photos = list(parity_photos or default_parity_photos())
    info = {"keras_sha256": files.file_sha256(directory / files.KERAS_FILE),
            "weights": weights, "bytes": len(model_bytes),
            "parity_vs_keras": tflite_parity(bundle, model_bytes, photos),
            "tensorflow": tf.__version__}
    staged = directory / (TFLITE_FILE + ".tmp")
    staged.write_bytes(model_bytes)
    (directory / files.TFLITE_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    staged.replace(directory / TFLITE_FILE)
    logging.info("%s: %.1f MB (%s weights); vs Keras on %d photos: max %d level(s) of 8 bits, "
                 "max ab %.3f", directory / TFLITE_FILE, len(model_bytes) / 1e6, weights,
                 len(photos), info["parity_vs_keras"]["max_level_diff"],
                 info["parity_vs_keras"]["max_ab_diff"])
    return info
