"""`koala train --experiment NAME[:VARIANT] --workdir DIR [--config.key=value ...]`.

Runs koala.train.train; rerunning the same command resumes from the last checkpoint (exactly:
the same weights as a run that was never stopped). The records the experiment declares are
built on first use; `--records_only` builds them and exits (`make records MODEL=NAME`).
A user error (unknown experiment or field, missing records or weights) is one line on
stderr, `koala train: ...`, and exit status 1.
Every leaf of every shipped experiment is a `--config.<path>` flag (e.g.
--config.train.batch_size=64, --config.precision=mixed_bfloat16), parsed as the type of
the experiment's value; so a typo is an unknown-flag error, not a silently ignored key.
"""

from absl import flags, logging

from koala import errors, train
from koala.models import backbones

FLAGS = flags.FLAGS
flags.DEFINE_string("experiment", None, "experiment name in experiments/ or a .py path, "
                    "optionally :VARIANT (tpu, gpu, cpu, tiny)", required=True)
flags.DEFINE_string("workdir", None, "run directory: checkpoints, TensorBoard, bundle/ "
                    "(any tf.io.gfile URL: gs://, ram://, or local)")
flags.DEFINE_bool("records_only", False, "build the records the experiment declares, then exit")
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


USER_ERRORS = (train.ConfigError, train.NonFiniteLoss, backbones.WeightsUnavailableError,
               FileNotFoundError)


def main(argv):
    if len(argv) > 1:
        raise errors.UserError(f"unexpected arguments {argv[1:]}")
    try:
        _run()
    except USER_ERRORS as error:  # one line `koala train: ...` (koala.errors, koala/cli.py)
        message = (train.weights_help(error) if isinstance(error, backbones.WeightsUnavailableError)
                   else errors.message(error))
        raise errors.UserError(message) from None


def _run():
    overrides = {path: FLAGS[f"config.{path}"].value for path in OVERRIDABLE
                 if FLAGS[f"config.{path}"].present}
    config = train.apply_overrides(train.load_config(FLAGS.experiment), overrides)
    if FLAGS.print_config:
        print(config)
        return
    if FLAGS.records_only:
        if config.data.get("pipeline", "records") != "records":
            print(f"{config.experiment} reads photo folders directly: no records to build")
            return
        records = train.ensure_records(config)
        print(f"records of {config.experiment}: {records}")
        return
    if not FLAGS.workdir:
        raise train.ConfigError("--workdir DIR is required (where checkpoints and the bundle go)")
    strategy = train.select_strategy(FLAGS.strategy)
    summary = train.train(config, FLAGS.workdir, strategy=strategy)
    logging.info("done: %s", summary)
