"""`koala records`: build sharded TFRecords + manifest.json from a folder, a list or tfds.

  koala records --input ../shared/data/photos/train --output records/default --size 224
  koala records --input tfds:cifar10:train --output records/cifar10 --size 32
  # N machines build one data set: run with --num_workers N --worker_index 0..N-1
  # (also spelt --num-workers, --worker-index, as the README used to)
  # or let Apache Beam schedule, retry and scale it (pip install 'koala[beam]'):
  koala records --runner beam --input gs://BUCKET/photos --output gs://BUCKET/records \
      --beam_options "--runner=DataflowRunner --project=P --region=R --temp_location=gs://..."

Re-running with the same arguments resumes: complete shards are kept.
"""

from absl import flags

from koala import image_io, photo
from koala.errors import UserError, check_choice

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "folder (recursive), text file of paths, or tfds:NAME[:SPLIT]")
flags.DEFINE_string("output", None, "output directory for shards and manifest.json")
flags.DEFINE_integer("size", 224, "working size: every image becomes size x size")
flags.DEFINE_string("resize", "pad", "pad: keep aspect, pad (Deep Koalarization); crop: "
                    "centre crop; stretch")  # checked in main: koala.data loads TensorFlow
flags.DEFINE_integer("pad_value", 255, "grey level of the padding (255 = white, as the paper)")
flags.DEFINE_integer("shards", 0, "number of train shards (0: about 1024 images per shard)")
flags.DEFINE_float("val_fraction", 0.1, "fraction of the source held out as the val split")
flags.DEFINE_string("embedding", "", "backbone name: also store its pooled float16 embedding")
flags.DEFINE_string("embedding_weights", "imagenet", "weights argument for the backbone")
flags.DEFINE_integer("embedding_size", 0, "the backbone embeds the photo cut to this size as "
                     "the record's image (0: the record's image, resized to its input)",
                     lower_bound=0)
flags.DEFINE_integer("num_workers", 1, "number of processes/machines building this data set")
flags.DEFINE_integer("worker_index", 0, "which of them this process is (0-based)")
flags.DEFINE_integer("seed", 0, "seed of the train/val split and shard assignment")
flags.DEFINE_integer("limit", 0, "use only the first N images of the source (0: all)")
flags.DEFINE_float("min_chroma", photo.COLOUR_CHROMA,
                   "skip images whose mean Lab chroma is below this (grayscale sources)")
flags.DEFINE_integer("max_pixels", image_io.DEFAULT_MAX_PIXELS,
                     "skip images with more pixels than this (decompression bombs)", lower_bound=1)
flags.DEFINE_integer("processes", 0, "decoding processes (0: one per CPU core; 1: in-process)")
flags.DEFINE_enum("runner", "local", ["local", "beam"],
                  "local: this machine's processes; beam: an Apache Beam pipeline (same output)")
flags.DEFINE_string("beam_options", "", "Beam pipeline options, e.g. \"--runner=DataflowRunner "
                    "--project=P ...\" (default: DirectRunner, one worker per core)")
flags.DEFINE_string("tfds_data_dir", None, "tfds data_dir holding prepared data sets")
flags.DEFINE_string("tfds_manual_dir", None, "tfds manual_dir with the raw files (imagenet2012)")
flags.DEFINE_bool("tfds_download", False, "let tfds download the data set (needs internet)")
flags.mark_flags_as_required(["input", "output"])
for _name in ("num_workers", "worker_index"):  # the spelling the README used to document
    flags.DEFINE_alias(_name.replace("_", "-"), _name)
flags.register_validator("num_workers", lambda n: n >= 1, "must be >= 1")
flags.register_validator("val_fraction", lambda f: 0.0 <= f < 1.0, "must be in [0, 1)")
flags.register_multi_flags_validator(
    ["worker_index", "num_workers"], lambda v: 0 <= v["worker_index"] < v["num_workers"],
    "--worker_index must be in [0, --num_workers)")


def _beam_writer():
    """The Beam writer, or a UserError that says how to install it."""
    if FLAGS.num_workers != 1:
        raise UserError("--runner beam schedules the work itself: drop --num_workers")
    try:
        from koala.data import beam_writer
    except ImportError as error:
        raise UserError(f"--runner beam needs Apache Beam ({error}): "
                        "pip install 'koala[beam]'") from None
    return beam_writer


def _weights_unavailable():
    """The missing-weights error class, when an embedding is asked for (else catch nothing:
    koala.models, and Keras, load only then)."""
    if not FLAGS.embedding:
        return ()
    from koala.models.backbones import WeightsUnavailableError

    return WeightsUnavailableError


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {argv[1:]}")
    from koala.data import images, sources, writer  # late: `koala records --help` has no TF

    check_choice("resize", FLAGS.resize, images.RESIZE_MODES)
    beam_writer = _beam_writer() if FLAGS.runner == "beam" else None
    try:  # a missing folder, TfdsUnavailable: one line (koala.errors)
        if beam_writer and "://" in FLAGS.input:  # gs://: listed through Beam's filesystems
            source = beam_writer.remote_folder_source(FLAGS.input)
        else:
            source = sources.open_source(FLAGS.input, FLAGS.tfds_data_dir,
                                         FLAGS.tfds_manual_dir, FLAGS.tfds_download)
    except ValueError as error:  # a tfds data set without images
        raise UserError(str(error)) from None
    settings = writer.Settings(
        source=source.description, size=FLAGS.size, resize=FLAGS.resize,
        pad_value=FLAGS.pad_value, val_fraction=FLAGS.val_fraction, shards=FLAGS.shards,
        seed=FLAGS.seed, limit=FLAGS.limit, min_chroma=FLAGS.min_chroma,
        max_pixels=FLAGS.max_pixels, embedding=FLAGS.embedding,
        embedding_weights=FLAGS.embedding_weights, embedding_size=FLAGS.embedding_size)
    try:
        if beam_writer:
            manifest = beam_writer.build(source, FLAGS.output, settings, FLAGS.beam_options,
                                         processes=FLAGS.processes)
        else:
            manifest = writer.build(source, FLAGS.output, settings, FLAGS.num_workers,
                                    FLAGS.worker_index, processes=FLAGS.processes or None)
    except _weights_unavailable() as error:  # offline "imagenet": one line naming the file
        raise UserError(f"{' '.join(str(error).split())} Here: --embedding_weights FILE.") from None
    except ValueError as error:  # the output holds shards built with other settings
        raise UserError(str(error)) from None
    if manifest is None:
        print(f"wrote worker {FLAGS.worker_index}'s shards to {FLAGS.output}; manifest.json "
              "follows when every worker is done (re-run any worker to merge)")
        return
    counts = manifest["counts"]
    print(f"wrote {FLAGS.output}: train {counts['train']['examples']} examples in "
          f"{counts['train']['shards']} shards, val {counts['val']['examples']} in "
          f"{counts['val']['shards']}; skipped {len(manifest['skipped'])} "
          f"{manifest['skip_reasons']} (see manifest.json)")
