"""`koala <verb> [flags]`: dispatches to one module per verb under koala/commands/.

Each verb module defines its own absl flags and a `main(argv)` (and may define
`parse_flags(argv)` when its flags depend on the command line, as `koala train`'s --config
does on --experiment); only the chosen verb is imported, so verbs never clash over flag
names and `koala --help` stays fast.

Errors: a user error (koala.errors: a bad flag, a missing file, an unreadable image, ...)
is one line `koala VERB: message` on stderr and exit status 1; a bug keeps its traceback.
"""

import importlib
import os
import sys

VERBS = {
    "records": "build sharded TFRecords (+ manifest) from a folder, a file list or tfds",
    "models": "list the registered models with parameter counts and backbones",
    "train": "train an experiment (tf.distribute, checkpoints, TensorBoard)",
    "colorize": "colorize photos, folders and videos at full resolution",
    "evaluate": "evaluate models against baselines with the papers' metrics",
    "export": "export a SavedModel for TF Serving (and TFLite)",
    "ship": "choose the default model's decoding on validation photos, write its bundle",
    "client": "send photos to a TF Serving REST endpoint",
    "report": "run the papers' comparisons and write experiments/REPORT.md",
    "study": "the 'Fake or real?' user study web page and its results",
    "app": "a web page to colorize photos in a browser (FastAPI, loopback by default)",
}


def _usage():
    lines = ["usage: koala <verb> [flags]   (koala <verb> --help for its flags)", ""]
    lines += [f"  {verb:<10} {text}" for verb, text in VERBS.items()]
    return "\n".join(lines)


def _help_shows(module):
    """`koala VERB --help` shows the verb module's docstring and flags: absl's help prints
    the __main__ module's docstring and the key flags of the module named sys.argv[0]."""
    from absl import flags  # noqa: PLC0415

    sys.modules["__main__"].__doc__ = module.__doc__
    for flag in flags.FLAGS.get_flags_for_module(module.__name__):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def run(argv=None):
    """Console-script entry point."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if len(argv) >= 2 else 2
    verb = argv[1]
    if verb not in VERBS:
        print(f"koala: unknown verb {verb!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    # TensorFlow's C++ INFO notes (CPU instruction sets, ...) would bury the one-line errors;
    # its warnings and errors still show, TF_CPP_MIN_LOG_LEVEL=0 brings the notes back (the
    # oneDNN note at import ignores the setting).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    from absl import app  # imported late: `koala --help` should not pay for it

    from koala import errors

    module = importlib.import_module(f"koala.commands.{verb}")
    _help_shows(module)
    try:
        app.run(errors.user_main(module.main), argv=[f"koala {verb}"] + argv[2:],
                flags_parser=getattr(module, "parse_flags", errors.parse_flags))
    except errors.user_errors() as error:
        print(f"koala {verb}: {errors.message(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run())
