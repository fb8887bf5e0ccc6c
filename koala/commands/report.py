"""`koala report`: run the papers' central comparisons and write experiments/REPORT.md.

  koala report --output experiments/REPORT.md                 # the committed one (~25 min)
  koala report --budget tiny --output /tmp/r/REPORT.md --workdir /tmp/r/runs   # ~1 min

Figures go to report_figures/ beside the output; records and training runs to
--workdir/<budget>/ (records are reused by later runs; models are retrained unless
--reuse_runs).
"""

import sys

from absl import flags

from koala import report

FLAGS = flags.FLAGS
flags.DEFINE_string("output", "experiments/REPORT.md", "the Markdown report to write")
flags.DEFINE_enum("budget", "cpu", list(report.BUDGETS), "size of every run: tiny proves the "
                  "pipeline in about a minute; cpu is the real report")
flags.DEFINE_string("workdir", "runs/report", "records and training runs (per budget)")
flags.DEFINE_string("data", "../shared/data", "the shared photos (cifar10/, photos/)")
flags.DEFINE_bool("reuse_runs", False, "reuse finished training runs in the workdir instead "
                  "of retraining (rewrites the report from the same models)")


def main(argv):
    if len(argv) > 1:
        print(f"koala report: unexpected arguments {argv[1:]}", file=sys.stderr)
        sys.exit(2)
    try:
        report.run(FLAGS.output, FLAGS.budget, FLAGS.workdir, FLAGS.data, FLAGS.reuse_runs)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"koala report: {error}", file=sys.stderr)
        sys.exit(1)
