"""`koala client`: colorize photos on a TF Serving REST endpoint serving a Koala export.

  koala client --url http://localhost:8501 --model koala photo1.jpg photo2.png --output out/
  koala client --model koala old.jpg --output out/ --hints hints.json   (a hint model's export)

Writes OUTPUT/<stem>.png per input; inputs are never overwritten.
"""

import os

from absl import flags

from koala.errors import UserError
from koala.image_io import DEFAULT_MAX_PIXELS

flags.DEFINE_string("url", "http://localhost:8501", "TF Serving's REST address (host:port)")
flags.DEFINE_string("model", "koala", "the served model's name (TF Serving's MODEL_NAME)")
flags.DEFINE_integer("version", None, "ask for this model version (default: the latest)")
flags.DEFINE_string("signature", "serving_default", "signature that maps image_bytes to PNGs")
flags.DEFINE_string("output", None, "folder for the colorized PNGs")
flags.DEFINE_integer("batch_size", 8, "images per request")
flags.DEFINE_float("timeout", 300.0, "seconds to wait for each request")
flags.DEFINE_integer("max_pixels", DEFAULT_MAX_PIXELS, "do not send images with more pixels (read "
                     "from the header; the export refuses above its own limit)", lower_bound=1)

flags.DEFINE_string("hints", None, "colour hints JSON (as `koala colorize --hints`): a list for "
                    "one photo or {file name: list}; sent to the colorize_hints signature")

FLAGS = flags.FLAGS


def main(argv):
    images = argv[1:]
    if not images:
        raise UserError("give one or more image files to colorize")
    if not FLAGS.output:
        raise UserError("--output DIR is required")
    missing = [p for p in images if not os.path.lexists(p)]
    if missing:
        raise UserError(f"no such image file: {', '.join(missing)}")
    from koala import hints as hints_lib
    from koala.serving import client  # late: `koala client --help` stays fast

    hints = hints_lib.load(FLAGS.hints) if FLAGS.hints else None
    if isinstance(hints, list) and len(images) > 1:
        raise UserError(f"{FLAGS.hints}: a list of hints is for one photo; for {len(images)} "
                        "images give an object {file name: list}")

    failures = []  # a bad file is named and skipped; the others are still sent
    written = client.colorize_files_via_server(  # the server unreachable: ClientError, one line
        FLAGS.url, FLAGS.model, images, FLAGS.output, batch_size=FLAGS.batch_size,
        on_error=lambda path, message: failures.append(message),
        max_pixels=FLAGS.max_pixels, version=FLAGS.version, signature=FLAGS.signature,
        timeout=FLAGS.timeout,
        hints_of=(lambda path: hints_lib.for_photo(hints, path)) if hints else None)
    for path in written:
        print(path)
    if failures:
        raise UserError(f"skipped {len(failures)} of {len(images)}: " + "; ".join(failures))
