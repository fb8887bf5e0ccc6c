"""`koala evaluate`: models vs baselines with the papers' metrics -> metrics.json, report.md.

  koala evaluate --model default --input ../shared/data/benchmark --output out/evaluate
  koala evaluate --model default --model runs/zhang --input records/val --output out/cmp \\
      --train_stats ../shared/data/photos/train
  koala evaluate --model default --input ../shared/data/photos/val --output out/hints \\
      --hints 0 --hints 1 --hints 10
"""

from absl import flags, logging

from koala import image_io
from koala.errors import UserError

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("model", ["default"], "model name or path; repeat to compare")
flags.DEFINE_string("input", None, "folder of colour photos, or TFRecords (dir, file or glob)")
flags.DEFINE_string("output", None, "directory for metrics.json, report.md and figures")
flags.DEFINE_integer("size", None, "working size of the models (default: each bundle's)")
flags.DEFINE_string("train_stats", None, "training photos or records for the mean-ab baseline "
                    "and the rebalancing prior (default: the evaluated photos)")
flags.DEFINE_integer("limit", 0, "evaluate only the first N photos (0: all)")
flags.DEFINE_float("threshold", 10.0, "raw-accuracy threshold (L2 in ab units)")
flags.DEFINE_bool("semantic", True, "run the ImageNet classifier (semantic interpretability)")
flags.DEFINE_string("reference_study", None, "photos in class/scene folders: also measure "
                    "reference-guided colorization, each guided by another photo of its folder")
flags.DEFINE_integer("max_pixels", image_io.DEFAULT_MAX_PIXELS,
                     "skip photos with more pixels (read from the header, before decoding)",
                     lower_bound=1)
flags.DEFINE_multi_float("vividness", None, "evaluate each model at these vividness values "
                         "(0 accurate .. 1 vivid; repeat to compare; default: the model's own)",
                         lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_multi_integer("hints", None, "also measure each hint model with N simulated "
                           "colour hints (Zhang et al. 2017's protocol at 256x256; repeat: "
                           "--hints 0 --hints 10)", lower_bound=0)
flags.mark_flags_as_required(["input", "output"])


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {argv[1:]} (photos go in --input)")
    from tqdm import tqdm  # noqa: PLC0415

    from koala.evaluation import evaluate

    try:
        with tqdm(unit="img", desc="evaluate", delay=0.5) as bar:  # no bar before a photo
            results = evaluate.run(FLAGS.model, FLAGS.input, FLAGS.output, FLAGS.size,
                                   FLAGS.train_stats, FLAGS.limit, FLAGS.threshold,
                                   FLAGS.semantic, progress=bar.update,
                                   reference_source=FLAGS.reference_study,
                                   max_pixels=FLAGS.max_pixels,
                                   vividness=FLAGS.vividness or (None,),
                                   hint_counts=FLAGS.hints or ())
    except ValueError as error:  # no photos, bad records, a bundle's bad metadata
        raise UserError(str(error)) from error
    for method, values in results["methods"].items():
        logging.info("%-16s AuC %.2f  PSNR %.2f  ab MSE %.1f", method, values["auc"],
                     values["psnr"], values["ab_mse"])
    for label, result in results.get("hint_sweep", {}).items():
        for count, values in result["by_hints"].items():
            logging.info("%-16s %3d hints: PSNR %.2f (gray %.2f)  AuC %.2f  colourfulness %.2f",
                         label, count, values["psnr"], result["gray"]["psnr"], values["auc"],
                         values["colorfulness_ratio"])
    logging.info("wrote %s/metrics.json and report.md", FLAGS.output)
