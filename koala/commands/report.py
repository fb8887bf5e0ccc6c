"""`koala report`: run the papers' central comparisons and write experiments/REPORT.md.

  koala report --output experiments/REPORT.md --readme README.md   # the committed one (<= 4 h)
  koala report --budget tiny --output /tmp/r/REPORT.md --workdir /tmp/r/runs   # ~1 min
  koala report --budget paper --output /big/REPORT.md --workdir /big/runs  # days, GPU/TPU

Figures go to report_figures/ beside the output; records and training runs to
--workdir/<budget>/. The report resumes: rerun the same command after a kill and finished
runs are reused (their recorded time counted), an unfinished one continues from its last
checkpoint, and a run whose planned config changed is trained afresh.

The paper budget runs each comparison at its paper's scale and data (records from tfds:
Places365-small, ImageNet, CIFAR-10; EfficientNet-B7 and Inception-ResNet-v2 with their
ImageNet weights), under the strategy the hardware asks for (TPU, several GPUs).
"""

import pathlib

from absl import flags

from koala.errors import UserError, check_choice

FLAGS = flags.FLAGS
flags.DEFINE_string("output", "experiments/REPORT.md", "the Markdown report to write")
flags.DEFINE_string("budget", "cpu", "size of every run: tiny proves the pipeline in about a "
                    "minute; cpu is the real report; paper runs each comparison at its "
                    "paper's scale and data, days on a GPU or TPU: it needs the tfds data "
                    "sets (downloaded; ImageNet's tars in tfds' manual folder) and the "
                    "internet for the ImageNet weights")  # checked in main: reproduce loads TF
flags.DEFINE_string("workdir", "runs/report", "records and training runs (per budget)")
flags.DEFINE_string("data", "../shared/data", "the shared photos (cifar10/, photos/)")
flags.DEFINE_string("readme", None, "a README.md whose report block (between its "
                    "'<!-- report:start' and '<!-- report:end -->' lines) gets the report's "
                    "summary: verdicts, headline table, margins over gray")


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {argv[1:]}")
    if not pathlib.Path(FLAGS.data).is_dir():  # before TensorFlow and the classifier load
        raise UserError(f"--data {FLAGS.data}: no such folder (it holds cifar10/ and photos/)")
    from koala.reproduce import readme
    if FLAGS.readme is not None:  # before hours of training, not after
        try:
            readme.check(FLAGS.readme)
        except (OSError, ValueError) as error:
            raise UserError(f"--readme {error}") from error
    from koala.reproduce import budget, run  # late: `koala report --help` skips TensorFlow
    from koala.training import distribute

    check_choice("budget", FLAGS.budget, budget.BUDGETS)
    # the runs train under the current strategy: at paper scale the hardware's
    strategy = "auto" if budget.BUDGETS[FLAGS.budget].at_paper_scale else "default"
    try:
        with distribute.select_strategy(strategy).scope():
            run.run(FLAGS.output, FLAGS.budget, FLAGS.workdir, FLAGS.data, FLAGS.readme)
    except (ValueError, RuntimeError) as error:  # no usable photos, no classifier
        raise UserError(str(error)) from error
