"""`koala train --experiment NAME[:VARIANT] --workdir DIR [--config.key=value ...]`.

Runs koala.train.train; rerunning the same command resumes from the last checkpoint.
Every leaf of every shipped experiment is a `--config.<path>` flag (e.g.
--config.train.batch_size=64, --config.precision=mixed_bfloat16), parsed as the type of
the experiment's value; so a typo is an unknown-flag error, not a silently ignored key.
"""

import sys

from absl import flags, logging

from koala import train

FLAGS = flags.FLAGS
flags.DEFINE_string("experiment", None, "experiment name in experiments/ or a .py path, "
                    "optionally :VARIANT (tpu, gpu, cpu, tiny)", required=True)
flags.DEFINE_string("workdir", None, "run directory: checkpoints, TensorBoard, bundle/",
                    required=True)
flags.DEFINE_string("strategy", "auto", "auto, default, one_device, mirrored[:N CPUs], "
                    "multiworker (TF_CONFIG), tpu[:NAME]")
flags.DEFINE_bool("print_config", False, "print the resolved config and exit")


def _leaf_paths(config, prefix=""):
    for key, value in config.items():
        if hasattr(value, "items"):
            yield from _leaf_paths(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def _define_override_flags():
    """One string flag per config field found in any shipped experiment."""
    paths = set()
    for name in train.experiment_names():
        paths.update(_leaf_paths(train.load_config(name)))
    for path in sorted(paths):
        flags.DEFINE_string(f"config.{path}", None, f"override {path} of the experiment")
    return sorted(paths)


OVERRIDABLE = _define_override_flags()


def main(argv):
    if len(argv) > 1:
        raise flags.Error(f"unexpected arguments {argv[1:]}")
    overrides = {path: FLAGS[f"config.{path}"].value for path in OVERRIDABLE
                 if FLAGS[f"config.{path}"].present}
    config = train.apply_overrides(train.load_config(FLAGS.experiment), overrides)
    if FLAGS.print_config:
        print(config)
        return
    try:
        strategy = train.select_strategy(FLAGS.strategy)
        summary = train.train(config, FLAGS.workdir, strategy=strategy)
    except train.NonFiniteLoss as error:
        logging.error("%s", error)
        sys.exit(f"koala train: {error}")
    logging.info("done: %s", summary)
