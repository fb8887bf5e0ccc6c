"""SavedModel export for TF Serving (and TFLite beside it) of a trained Koala bundle.

Everything is written with keras.export.ExportArchive: a plain tf.saved_model.save of a
tf.Module loads in Python, but `saved_model_cli run` fails on it ("Could not find variable").
The graph itself is koala.serving.graph.

Layout of an export (TF Serving discovers only integer version directories):

    DIR/<version>/saved_model.pb, variables/   format "saved_model" (the default)
    DIR/<version>/model.tflite                 format "tflite" (model_int8.tflite: dynamic)
    DIR/<version>/koala_export.json            what was exported, from what, figures

FORMATS is the one table of what an export can hold: a new format is one entry.

DIR may be local or a gs:// (any tf.io.gfile) URL: TF Serving reads model_base_path from GCS.
"""

import datetime
import json
import os
import pathlib
import posixpath
import shutil
import tempfile

import keras
import tensorflow as tf
from absl import logging

import koala
from koala import image_io, paths
from koala.serving import graph
from koala.serving import tflite as tflite_lib
from koala.bundle.dynamic_resize import resize_accepting_dynamic_sizes
from koala.serving.graph import IMAGE_INPUT, IMAGE_OUTPUT
from koala.bundle.conversion import ExportError

METADATA_FILE = "koala_export.json"
SIGNATURES = {
    "serving_default": {"inputs": {IMAGE_INPUT: "string [N] encoded JPEG/PNG"},
                        "outputs": {IMAGE_OUTPUT: "string [N] PNG, input size"}},
    "colorize_tensor": {"inputs": {"L": "float32 [N,H,W,1] in [0,100]"},
                        "outputs": {"ab": "float32 [N,H,W,2] Lab units"}},
    "colorize_tf_example": {"inputs": {"serialized": "tf.Example with image/encoded"},
                            "outputs": {IMAGE_OUTPUT: "string [N] PNG"}},
    "colorize_hints": {"inputs": {IMAGE_INPUT: "string [N] encoded JPEG/PNG",
                                  "hints": "float32 [N,K,5] x, y, a, b, size (size 0: none)"},
                       "outputs": {IMAGE_OUTPUT: "string [N] PNG, input size"}},
}


def serving_functions(bundle, max_pixels=image_io.DEFAULT_MAX_PIXELS):
    """{signature name: (function, input signature)} for ExportArchive.add_endpoint.

    Images in one request may differ in size, so each is colorized on its own; the working
    size, stride and fit are the bundle's (graph.Fit), so served and local results agree.
    """

    def colorize_bytes(image_bytes, vividness=None):
        return {IMAGE_OUTPUT: graph.colorize_bytes(bundle, image_bytes, max_pixels, vividness)}

    def colorize_vividness(image_bytes, vividness):
        """serving_default at a chosen vividness (0 accurate .. 1 vivid), one per request."""
        checks = [tf.debugging.assert_greater_equal(vividness, 0.0, "vividness must be >= 0"),
                  tf.debugging.assert_less_equal(vividness, 1.0, "vividness must be <= 1")]
        with tf.control_dependencies(checks):
            return colorize_bytes(image_bytes, tf.identity(vividness))

    def colorize_tensor(L):  # noqa: N803  (the signature's input name)
        return {"ab": graph.lightness_to_ab(bundle, L)}

    def colorize_hints(image_bytes, hints):
        """serving_default steered by colour hints: per image K rows of (x, y, a, b, size)
        in its pixel coordinates and Lab units (koala.hints; rows of size 0 are padding)."""
        return {IMAGE_OUTPUT: graph.colorize_bytes(bundle, image_bytes, max_pixels,
                                                   hint_points=hints)}

    def colorize_tf_example(serialized):
        """tf.Example with "image/encoded" bytes (as tensorflow/models official/vision)."""
        parsed = tf.io.parse_example(
            serialized, {"image/encoded": tf.io.FixedLenFeature([], tf.string)})
        return colorize_bytes(parsed["image/encoded"])

    functions = {
        "serving_default": (colorize_bytes, [tf.TensorSpec([None], tf.string, IMAGE_INPUT)]),
        "colorize_tensor": (
            colorize_tensor, [tf.TensorSpec([None, None, None, 1], tf.float32, "L")]),
        "colorize_tf_example": (
            colorize_tf_example, [tf.TensorSpec([None], tf.string, "serialized")]),
    }
    if bundle.has_hint_input:  # a hint model (koala.hints)
        functions["colorize_hints"] = (colorize_hints, [
            tf.TensorSpec([None], tf.string, IMAGE_INPUT),
            tf.TensorSpec([None, None, 5], tf.float32, "hints")])
    if "vividness" in bundle.meta:  # the model has the control (koala.vividness)
        functions["colorize_vividness"] = (colorize_vividness, [
            tf.TensorSpec([None], tf.string, IMAGE_INPUT), tf.TensorSpec([], tf.float32,
                                                                        "vividness")])
    return functions


def write_saved_model(bundle, directory, max_pixels=image_io.DEFAULT_MAX_PIXELS):
    """Writes the SavedModel with every signature of serving_functions into `directory`.

    The model is not passed to archive.track(): the endpoints capture its variables
    anyway, and tracking stored every weight twice (a 42 MB export of 19 MB of weights).
    """
    archive = keras.export.ExportArchive()
    with resize_accepting_dynamic_sizes():  # bilinear UpSampling2D at a dynamic shape
        for name, (function, signature) in serving_functions(bundle, max_pixels).items():
            archive.add_endpoint(name, function, input_signature=signature)
        archive.write_out(str(directory), verbose=False)


# --------------------------------------------------------------------------- versions

def existing_versions(base_dir):
    """Integer version directories under base_dir (local or URL), sorted."""
    if not tf.io.gfile.isdir(str(base_dir)):
        return []
    names = (name.rstrip("/") for name in tf.io.gfile.listdir(str(base_dir)))
    return sorted(int(name) for name in names
                  if name.isdigit() and tf.io.gfile.isdir(paths.join(base_dir, name)))


def choose_version(base_dir, version=None):
    """`version`, or the next free integer; never an existing one (no silent overwrite)."""
    versions = existing_versions(base_dir)
    if version is None:
        return (versions[-1] + 1) if versions else 1
    version = int(version)
    if version < 0:
        raise ExportError(f"--version must be a non-negative integer, not {version}")
    if tf.io.gfile.exists(paths.join(base_dir, str(version))):
        raise ExportError(
            f"{base_dir}/{version} exists; exports are never overwritten: pass another "
            f"--version or omit it (next free: {choose_version(base_dir)})")
    return version


# --------------------------------------------------------------------------- the export

def directory_bytes(directory):
    """Total size of the files under `directory`."""
    return sum(p.stat().st_size for p in pathlib.Path(directory).rglob("*") if p.is_file())


def metadata(bundle, version, max_pixels):
    """koala_export.json: what was exported, from what, with which software, and its size."""
    return {
        "koala_version": koala.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "version": version,
        "bundle": str(bundle.path),
        "bundle_meta": bundle.meta,
        "working_size": bundle.size,
        "max_pixels": max_pixels,  # larger images: InvalidArgument before decoding
        "signatures": {name: SIGNATURES[name] for name in serving_functions(bundle, max_pixels)
                       if name in SIGNATURES},
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def _saved_model_format(bundle, directory, options):
    write_saved_model(bundle, directory, options["max_pixels"])
    return {"saved_model_bytes": directory_bytes(directory)}


def _tflite_format(bundle, directory, options):
    return {"tflite": tflite_lib.write_tflite(bundle, directory, options["quantize"],
                                              options["parity_photos"])}


# export format -> writer(bundle, version directory, options) -> its figures for the metadata
FORMATS = {"saved_model": _saved_model_format, "tflite": _tflite_format}


def export(bundle, output_dir, version=None, formats=("saved_model",), quantize=None,
           parity_photos=None, max_pixels=image_io.DEFAULT_MAX_PIXELS):
    """Writes OUTPUT_DIR/<version>/ with each of `formats` (keys of FORMATS) and returns its
    path (a string); the metadata holds the figures.

    The version is assembled in a hidden temporary directory and only then put in place:
    TF Serving polls OUTPUT_DIR and must never see a half-written version. Locally that is
    one rename; a URL (gs://) has no directory rename, so the staged files are copied up
    with saved_model.pb last (TF Serving loads a version once its saved_model.pb is there).
    """
    unknown = [name for name in formats if name not in FORMATS]
    if unknown or not formats:
        raise ExportError(f"--format: {', '.join(unknown) or 'none given'}; choose from "
                          f"{', '.join(FORMATS)}")
    if quantize and "tflite" not in formats:
        raise ExportError("--quantize applies to the TFLite file: add --format tflite")
    output_dir = str(output_dir)
    version = choose_version(output_dir, version)
    remote = paths.is_url(output_dir)
    if not remote:
        os.makedirs(output_dir, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".koala-export-{version}-",
                                            dir=None if remote else output_dir))
    staging.chmod(0o755)  # mkdtemp makes it private; a serving container may run as another user
    target = paths.join(output_dir, str(version))
    options = {"max_pixels": max_pixels, "quantize": quantize, "parity_photos": parity_photos}
    try:
        meta = metadata(bundle, version, max_pixels)
        for name in formats:
            meta.update(FORMATS[name](bundle, staging, options))
        meta["formats"] = list(formats)
        (staging / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        if remote:
            _copy_up(staging, target)
        else:
            staging.rename(target)  # raises if another export filled this version meanwhile
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logging.info("exported %s (%s) to %s", bundle.name, ", ".join(formats), target)
    return target


def _copy_up(staging, target):
    """Copies the staged export to the URL `target`, saved_model.pb last, never overwriting."""
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.name == "saved_model.pb")  # stable: the graph goes last
    for path in files:
        destination = paths.join(target, *path.relative_to(staging).parts)
        tf.io.gfile.makedirs(posixpath.dirname(destination))
        tf.io.gfile.copy(str(path), destination, overwrite=False)


def read_metadata(version_dir):
    """koala_export.json of an export version (local or URL)."""
    with tf.io.gfile.GFile(paths.join(version_dir, METADATA_FILE)) as stream:
        return json.load(stream)
