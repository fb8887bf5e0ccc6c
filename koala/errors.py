"""User errors of `koala VERB`: one line `koala VERB: message` on stderr, exit status 1.

A user error is one that the person at the command line can fix from the message alone: a
path that does not exist, a flag that is unknown or has an invalid value, a file that is
not an image, a model bundle or records that are missing, an unknown experiment. Anything
else is a bug and keeps its traceback.

Verbs raise `UserError` for what they check themselves and let the library's own user
errors (`LIBRARY_ERRORS`) propagate; koala/cli.py catches both (`user_errors()`) and
prints the one line. Flags are parsed by `parse_flags`, so a bad flag is a UserError too.
"""

import sys


class UserError(Exception):
    """A mistake the user can fix; the message names the file, flag or value at fault."""


# Library exceptions that are user errors, as (module, class). They are looked up only in
# modules already imported (an exception can only come from a module that is), so catching
# them never imports TensorFlow: koala.serving and the backbones load it, LiteRT runs do not.
# koala.training's ConfigError and NonFiniteLoss are `koala train`'s (koala/commands/train.py).
LIBRARY_ERRORS = (
    ("koala.image_io", "UnreadableImage"),  # not an image, corrupt, too many pixels
    ("koala.hints", "HintError"),  # a colour hint outside the image, a bad colour, not JSON
    ("koala.serving.client", "ClientError"),  # TF Serving unreachable, or it refused the request
    ("koala.bundle.conversion", "ExportError"),
    ("koala.data.sources", "TfdsUnavailable"),
    ("koala.models.backbones", "WeightsUnavailableError"),  # offline, no local weights file
)
# A path given on the command line that is missing, of the wrong kind or not permitted.
PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
               FileExistsError)


def user_errors():
    """The exception classes that `koala VERB` reports as one line (see LIBRARY_ERRORS)."""
    found = [UserError, *PATH_ERRORS]
    for module_name, class_name in LIBRARY_ERRORS:
        module = sys.modules.get(module_name)
        if module is not None:
            found.append(getattr(module, class_name))
    return tuple(found)


def message(error):
    """The error as one line: "PATH: reason" for OS errors, else its text, blanks collapsed."""
    if isinstance(error, OSError) and error.filename and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    else:
        text = str(error)
    return " ".join(text.split()) or type(error).__name__


def check_choice(flag, value, choices):
    """A UserError unless --flag's `value` is one of `choices`: the late check of a flag whose
    choices live in a module that loads TensorFlow (absl's enums check at parse time)."""
    if value not in choices:
        raise UserError(f"--{flag} must be one of {', '.join(choices)}, not {value!r}")


def parse_flags(argv):
    """absl's flag parsing (app.run's flags_parser) with a bad flag as a UserError: absl's
    own reports it on two lines and a usage hint."""
    from absl import flags  # noqa: PLC0415 (`koala --help` does not load absl)

    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        raise UserError(message(error)) from None


def user_main(main):
    """`main(argv)` with absl's app.UsageError raised as a UserError (absl would print the
    whole usage text for it), should a verb or what it calls still raise one."""
    from absl import app  # noqa: PLC0415

    def run_main(argv):
        try:
            return main(argv)
        except app.UsageError as error:
            raise UserError(message(error)) from None

    return run_main
