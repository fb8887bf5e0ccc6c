"""`koala train --experiment NAME[:VARIANT] --workdir DIR [--config.key=value ...]`.

Runs koala.training.loop.train; rerunning the same command resumes from the last checkpoint
(exactly: the same weights as a run that was never stopped). The records the experiment
declares are built on first use; `--records_only` builds them and exits
(`make records MODEL=NAME`). A user error (unknown experiment or field, missing records or
weights) is one line on stderr, `koala train: ...`, and exit status 1.
Every field of the experiment is a `--config.<path>` flag (ml_collections' config_flags:
e.g. --config.train.batch_size=64, --config.precision=mixed_bfloat16), parsed as the type of
the experiment's value; so a typo is an unknown-field error, not a silently ignored key.
"""

from absl import flags, logging

from koala import errors
from koala.training import config as training_config

FLAGS = flags.FLAGS
flags.DEFINE_string("experiment", None, "experiment name in experiments/ or a .py path, "
                    "optionally :VARIANT (tpu, gpu, cpu, tiny); its fields are flags "
                    "--config.SECTION.FIELD=VALUE (--print_config lists them)", required=True)
flags.DEFINE_string("workdir", None, "run directory: checkpoints, TensorBoard, bundle/ "
                    "(any tf.io.gfile URL: gs://, ram://, or local)")
flags.DEFINE_bool("records_only", False, "build the records the experiment declares, then exit")
flags.DEFINE_string("strategy", "auto", "auto, default, one_device, mirrored[:N CPUs], "
                    "multiworker (TF_CONFIG), tpu[:NAME]")
flags.DEFINE_bool("print_config", False, "print the resolved config and exit")


def _experiment_spec(argv):
    """The value of --experiment in `argv` (None if absent): it decides the config flag."""
    for index, arg in enumerate(argv):
        name, equals, value = arg.lstrip("-").partition("=")
        if arg.startswith("-") and name == "experiment":
            return value if equals else (argv[index + 1] if index + 1 < len(argv) else None)
    return None


def parse_flags(argv):
    """absl's parsing, with `--config` defined first from --experiment (config_flags reads
    the experiment's file and applies every --config.<path>=value to it)."""
    from ml_collections import config_flags  # noqa: PLC0415

    spec = _experiment_spec(argv)
    try:
        if spec:
            config_file = training_config.experiment_file(spec)
            training_config.load_config(spec)  # an unknown variant: one line, not a traceback
            config_flags.DEFINE_config_file("config", default=config_file, sys_argv=argv,
                                            lock_config=False)
        return errors.parse_flags(argv)
    except training_config.ConfigError as error:
        raise errors.UserError(str(error)) from None
    except (KeyError, AttributeError) as error:  # --config.no_such_field
        while error.args and isinstance(error.args[0], Exception):  # AttributeError(KeyError)
            error = error.args[0]
        field, _, hint = str(error.args[0] if error.args else error).partition("\n")
        raise errors.UserError(f"--config: the experiment has no field {field.strip(chr(39))}"
                               f"{f' ({hint})' if hint else ''}") from None


def main(argv):
    if len(argv) > 1:
        raise errors.UserError(f"unexpected arguments {argv[1:]}")
    if FLAGS.print_config:  # before TensorFlow loads: a quick look at what would run
        print(FLAGS.config)
        return
    from koala.models import backbones  # noqa: PLC0415
    from koala.training import loop  # noqa: PLC0415

    user_errors = (training_config.ConfigError, loop.NonFiniteLoss,
                   backbones.WeightsUnavailableError, FileNotFoundError)
    try:
        _run(FLAGS.config)
    except user_errors as error:  # one line `koala train: ...` (koala.errors, koala/cli.py)
        raise errors.UserError(_message(error)) from None


def _message(error):
    from koala.models import backbones  # noqa: PLC0415
    from koala.training import records  # noqa: PLC0415

    if isinstance(error, backbones.WeightsUnavailableError):
        return records.weights_help(error)
    return errors.message(error)


def _run(config):
    from koala.training import distribute, loop, records  # noqa: PLC0415

    if FLAGS.records_only:
        if config.data.get("pipeline", "records") != "records":
            print(f"{config.experiment} reads photo folders directly: no records to build")
            return
        print(f"records of {config.experiment}: {records.ensure_records(config)}")
        return
    if not FLAGS.workdir:
        raise training_config.ConfigError("--workdir DIR is required (where checkpoints and "
                                          "the bundle go)")
    strategy = distribute.select_strategy(FLAGS.strategy)
    summary = loop.train(config, FLAGS.workdir, strategy=strategy)
    logging.info("done: %s", summary)
