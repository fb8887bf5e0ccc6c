"""`koala colorize INPUT... --output DIR`: photos, folders, globs and videos at full resolution.

  koala colorize ../shared/data/historical --output out/colorized
  koala colorize 'scans/**/*.tif' film.mp4 --output out --model runs/koalarization --batch_size 16
  koala colorize old.jpg --output out --reference similar_colour_photo.jpg
  koala colorize old.jpg --output out --hints hints.json

--hints: colour hints (koala.hints), a JSON list for one photo, or an object {file name:
list} for several: [{"x": 120.5, "y": 80.5, "rgb": "#3050c0", "size": 6}, ...] (x, y: the
centre in the photo's pixels; "ab": [a, b] in CIE Lab instead of "rgb"; size: the square's
side, default 1). A photo whose hints are bad is named with the problem and skipped.

Inputs are never overwritten and existing outputs get a "-1", "-2"... suffix (unless
--overwrite). Unreadable files are named and skipped; the exit code is 1 if any failed.
"""

import time

from absl import flags, logging

from koala import hints as hints_lib
from koala import image_io
from koala.errors import UserError

FLAGS = flags.FLAGS
flags.DEFINE_string("output", None, "output directory (created; inputs' folder trees are kept)")
flags.DEFINE_string("model", "default", "'default', a bundle directory or a training workdir")
flags.DEFINE_integer("size", None, "working size of the model (default: the bundle's)")
flags.DEFINE_string("reference", None, "a colour photo of similar content to take colours from")
flags.DEFINE_enum("format", "png", ["png", "jpg"], "image output format (png keeps alpha, 16 bit)")
flags.DEFINE_integer("batch_size", 8, "images (or video frames) per model call", lower_bound=1)
flags.DEFINE_bool("keep_color", False, "leave inputs that are already colour photos as they are")
flags.DEFINE_bool("overwrite", False, "replace existing outputs (inputs are never replaced)")
flags.DEFINE_bool("consistent", True, "videos: smooth colours along optical flow over time")
flags.DEFINE_integer("max_pixels", image_io.DEFAULT_MAX_PIXELS,
                     "refuse images and video frames with more pixels (read from the header, "
                     "before decoding)", lower_bound=1)
flags.DEFINE_float("vividness", None, "0 (most accurate) .. 1 (most vivid); default: the "
                   "model's own, chosen on validation photos", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_string("hints", None, "colour hints JSON: a list for one photo, or {file name: "
                    "list} (koala.hints); needs a hint model such as the default")
flags.mark_flag_as_required("output")


def main(argv):
    inputs = argv[1:]
    if not inputs:
        raise UserError("give at least one INPUT (file, folder, glob or video)")
    from tqdm import tqdm  # noqa: PLC0415 (heavy imports only once the flags are valid)

    from koala.inference import colorizer as colorizer_lib
    from koala.inference import video

    found, unmatched = image_io.find_inputs(inputs)
    if not found:  # before the model loads: nothing it could do
        raise UserError("; ".join(f"{item}: no such file, folder or matching glob"
                                  for item in unmatched) or
                        f"no images or videos in {', '.join(inputs)}")
    failures = {item: f"{item}: no such file, folder or matching glob" for item in unmatched}
    pairs = image_io.plan_outputs(found, FLAGS.output, "." + FLAGS.format, FLAGS.overwrite)
    try:  # the cheap check before the model loads
        reference = (image_io.read_image(FLAGS.reference, FLAGS.max_pixels)
                     if FLAGS.reference else None)
    except image_io.UnreadableImage as error:
        raise UserError(f"--reference {error}") from None
    hints = hints_lib.load(FLAGS.hints) if FLAGS.hints else None  # bad file: one line
    if isinstance(hints, list) and len(found) > 1:
        raise UserError(f"{FLAGS.hints}: a list of hints is for one photo; for {len(found)} "
                        "inputs give an object {file name: list}")
    colorizer = colorizer_lib.Colorizer(FLAGS.model, FLAGS.size)  # missing: one line (koala.errors)
    hints_of = (lambda source: hints_lib.for_photo(hints, source)) if hints else None
    options = {"keep_color": FLAGS.keep_color, "reference": reference,
               "vividness": FLAGS.vividness}
    images = [(s, t) for s, t in pairs if s.suffix.lower() not in image_io.VIDEO_SUFFIXES]
    videos = [(s, t) for s, t in pairs if s.suffix.lower() in image_io.VIDEO_SUFFIXES]
    start = time.perf_counter()
    with tqdm(total=len(images), unit="img", desc="colorize") as bar:
        for source, error in colorizer_lib.colorize_files(images, colorizer, FLAGS.batch_size,
                                                       FLAGS.max_pixels, hints_of, **options):
            if error:
                failures[str(source)] = error
                logging.warning("skipped %s", error)  # the error names the file
            bar.update(1)
    for source, target in videos:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with tqdm(unit="frame", desc=source.name) as bar:
                stats = video.colorize_video(source, target, colorizer, FLAGS.batch_size,
                                             FLAGS.consistent, progress=bar.update,
                                             max_pixels=FLAGS.max_pixels)
            logging.info("%s -> %s: %d frames; flicker (mean |delta ab|, static pixels) "
                         "per-frame %.3f, consistent %.3f", source, target, stats["frames"],
                         stats["flicker_per_frame"], stats["flicker_consistent"])
        except (OSError, image_io.UnreadableImage) as error:
            failures[str(source)] = str(error)  # names the file (koala.inference.video)
    done = len(pairs) - sum(1 for s, _ in pairs if str(s) in failures)
    logging.info("%d of %d inputs colorized into %s in %.1f s", done,
                 len(pairs) + len(unmatched), FLAGS.output, time.perf_counter() - start)
    if failures:
        raise UserError(f"{len(failures)} of {len(pairs) + len(unmatched)} inputs failed: "
                        + "; ".join(failures.values()))
