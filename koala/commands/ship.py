"""`koala ship`: choose how a trained default model decodes, on validation photos, and write
its bundle (koala.shipping).

  koala ship --model runs/default                      # -> koala/weights/default
  koala ship --model runs/deeper192 --output runs/deeper192/shipped --limit 200 --sizes 192

--model is a training workdir (its bundle, else its newest checkpoint) or a bundle of a
two-head effnet_unet, a hint model included (the selection colorizes without hints). The
validation photos and the training data whose ab prior corrects the bin head default to the
run's own (its config.json). Writes OUTPUT/model.keras, koala.json, selection.json and
training_log.jsonl, and prints the anchors of the vividness control as one JSON line. The
benchmark photos are never read.
"""

import json

from absl import flags, logging

from koala.errors import UserError

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "runs/default", "training workdir or bundle of a two-head "
                    "effnet_unet (koala train --experiment default)")
flags.DEFINE_string("output", "default", "where the bundle goes ('default': "
                    "koala/weights/default, the shipped model)")
flags.DEFINE_string("val_photos", None, "validation photos (default: the run's "
                    "data.val_photos)")
flags.DEFINE_string("train_photos", None, "photos or records whose ab prior drives the prior "
                    "correction (default: the run's training data)")
flags.DEFINE_integer("limit", 400, "validation photos used, taken evenly over the folder",
                     lower_bound=1)
flags.DEFINE_list("sizes", ["192", "224", "256"], "working sizes tried (multiples of 32)")
flags.DEFINE_string("figure", None, "also draw accuracy against vividness here (PNG; "
                    "make default-model: docs/vividness.png)")


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {argv[1:]}")
    try:
        sizes = [int(size) for size in FLAGS.sizes]
    except ValueError:
        raise UserError(f"--sizes: integers, not {','.join(FLAGS.sizes)}") from None
    from koala.data import prior as prior_lib  # late: `koala ship --help` skips TensorFlow
    from koala.shipping import release, selection

    try:
        trained = release.load_trained(FLAGS.model)
    except release.NotShippable as error:
        raise UserError(str(error)) from None
    val_photos = FLAGS.val_photos or trained.run.get("data", {}).get("val_photos")
    train_data = FLAGS.train_photos or trained.training_data()
    if not val_photos or not train_data:
        raise UserError(f"{FLAGS.model} names no validation photos or training data (no "
                        f"run config.json): pass --val_photos and --train_photos")
    paths, photos = release.validation_photos(val_photos, FLAGS.limit)
    prior = prior_lib.ab_prior(train_data)
    logging.info("selecting on %d photos of %s at sizes %s (prior of %s)", len(photos),
                 val_photos, sizes, train_data)
    report = selection.select(trained.bundle, photos, prior, sizes,
                              selection.imagenet_photos(paths, photos))
    report = {"source": trained.source, "val_photos": str(val_photos),
              "train_data": str(train_data), **report}
    target = release.ship(trained, report, prior, FLAGS.output, FLAGS.figure)
    print(json.dumps({"bundle": str(target), **{k: report[k] for k in (
        "photos", "gray", *selection.ROLES, "default_vividness")}}, default=float))
