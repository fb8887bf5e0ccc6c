"""`koala export`: a SavedModel for TF Serving (and optionally TFLite) from a trained model.

  koala export --model default --output export/koala [--version N]
               [--format saved_model,tflite] [--quantize dynamic] [--parity_images DIR]
  koala export --model runs/my_model --format tflite [--tflite_weights float32]

Writes OUTPUT/<version>/ with each --format (koala.serving.saved_model.FORMATS; next free
version unless --version; never overwrites) and prints the path and figures of the export
as one JSON line. With --format tflite and no --output, model.tflite goes into the bundle
itself, so that `koala colorize` runs it through LiteRT without importing TensorFlow.
"""

import json
import pathlib

from absl import flags

from koala.errors import UserError
from koala.image_io import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES

flags.DEFINE_string("model", "default", "model name ('default') or bundle / training workdir path")
flags.DEFINE_string("output", None,
                    "base directory of the served model (TF Serving's model path; local or gs://)")
flags.DEFINE_integer("version", None, "integer version directory (default: the next free one)")
flags.DEFINE_list("format", ["saved_model"], "what to write: saved_model (TF Serving), tflite "
                  "(TFLite built-in ops only, LiteRT), or both: saved_model,tflite")
flags.DEFINE_enum("quantize", None, ["dynamic"],
                  "with --format tflite: also write model_int8.tflite (int8 dynamic-range "
                  "weights)")
flags.DEFINE_enum("tflite_weights", None, ["float32", "float16"],
                  "weights of the model.tflite added to a bundle (default float32; float16 "
                  "halves the file, up to 3 levels of 8 bits off Keras on the default model)")
flags.DEFINE_string("parity_images", None,
                    "folder of photos on which TFLite is compared with Keras "
                    "(default: scikit-image's sample photos)")
flags.DEFINE_integer("max_pixels", DEFAULT_MAX_PIXELS,
                     "the served graph refuses larger images (InvalidArgument, HTTP 400) from "
                     "their header, before decoding", lower_bound=1)

FLAGS = flags.FLAGS


def parity_photos(folder):
    """Image files in `folder` (recursive, sorted), or None for the default set."""
    if folder is None:
        return None
    paths = sorted(p for p in pathlib.Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise UserError(f"--parity_images {folder}: no images found")
    return paths


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.output and FLAGS.format != ["tflite"]:
        raise UserError("--output DIR is required (e.g. --output export/koala), or "
                        "--format tflite alone to add model.tflite to the bundle")
    photos = parity_photos(FLAGS.parity_images)  # checked before TensorFlow loads
    from koala.bundle import keras_bundle  # late: `koala export --help` should not import TF
    from koala.serving import saved_model, tflite

    # A missing bundle (FileNotFoundError) or an ExportError: one line (koala.errors).
    model = keras_bundle.load(FLAGS.model)
    if not FLAGS.output:
        info = tflite.add_tflite_to_bundle(
            model, FLAGS.tflite_weights or tflite.BUNDLE_TFLITE_WEIGHTS, photos)
        print(json.dumps({"bundle": str(model.path), "tflite": info}))
        return
    path = saved_model.export(model, FLAGS.output, version=FLAGS.version, formats=FLAGS.format,
                              quantize=FLAGS.quantize, parity_photos=photos,
                              max_pixels=FLAGS.max_pixels)
    metadata = saved_model.read_metadata(path)
    print(json.dumps({"export": path, "formats": metadata["formats"],
                      "saved_model_bytes": metadata.get("saved_model_bytes"),
                      "tflite": metadata.get("tflite", {})}))
