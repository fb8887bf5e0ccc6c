"""Experiments as code (big_vision's configs): `experiments/NAME.py` has `get_config(arg)`.

On the command line an experiment's fields are overridden by ml_collections' config_flags
(`koala train --experiment NAME --config.train.steps=8000`, see koala/commands/train.py);
code that varies an experiment (koala.reproduce) uses `override`.
"""

import importlib
import importlib.util
import os


class ConfigError(ValueError):
    """A user error in the experiment, its overrides or its records: `koala train` prints
    the message as one line and exits 1."""


def weights_help(error):
    """A missing-weights error (koala.models.backbones.WeightsUnavailableError) as one line,
    ending with the flags that take a local file instead."""
    first = " ".join(str(error).split())
    return (f"{first} With `koala train` pass --config.model.kwargs.weights=FILE (make: "
            f"WEIGHTS=FILE); with `koala records`, --embedding_weights FILE.")


def _experiments_package():
    """The top-level `experiments` package: from the checkout, else as installed."""
    return importlib.import_module("experiments")


def experiment_names():
    """Experiments shipped in experiments/ (each a module with get_config)."""
    folder = os.path.dirname(_experiments_package().__file__)
    return sorted(name[:-3] for name in os.listdir(folder) if name.endswith(".py")
                  and not name.startswith("_") and name != "common.py")


def experiment_file(spec):
    """"NAME[:ARG]" or "path/to/file.py[:ARG]" -> "path/to/NAME.py[:ARG]" (config_flags'
    spelling), checked: an unknown experiment is a ConfigError."""
    target, colon, arg = spec.partition(":")
    if target.endswith(".py"):
        if not os.path.isfile(target):
            raise ConfigError(f"experiment file {target} does not exist")
        path = target
    elif target in experiment_names():
        path = os.path.join(os.path.dirname(_experiments_package().__file__), f"{target}.py")
    else:
        raise ConfigError(f"unknown experiment {target!r}; known: {', '.join(experiment_names())}")
    return f"{os.path.abspath(path)}{colon}{arg}"


def load_config(spec):
    """"NAME[:ARG]" or "path/to/file.py[:ARG]" -> the experiment's ConfigDict.

    ARG is the scale variant (tpu, gpu, cpu, tiny), as big_vision's `config.py:runlocal`.
    A .py path is loaded as a module of the `experiments` package, so it may import
    `experiments.common` like the shipped ones.
    """
    path, _, arg = experiment_file(spec).partition(":")
    _experiments_package()
    name = os.path.basename(path)[:-3]
    module_spec = importlib.util.spec_from_file_location(f"experiments.{name}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    try:
        return module.get_config(arg or None)
    except ValueError as error:  # an unknown variant
        raise ConfigError(f"{spec}: {error}") from None


def override(config, changes):
    """`config` with {"train.batch_size": 64, ...} set (typed values, as config_flags sets
    them); a key the experiment lacks is a ConfigError, not a silently added field, except
    in model.kwargs, the open keyword arguments of koala.models.build."""
    for dotted in changes:
        if dotted.startswith("model.kwargs."):
            config.model.kwargs[dotted.removeprefix("model.kwargs.")] = changes[dotted]
            continue
        node = config
        for key in dotted.split("."):
            if not hasattr(node, "keys") or key not in node:
                raise ConfigError(f"{config.get('experiment', 'the experiment')} has no field "
                                  f"{dotted!r}")
            node = node[key]
    try:
        config.update_from_flattened_dict(
            {k: v for k, v in changes.items() if not k.startswith("model.kwargs.")})
    except TypeError as error:
        raise ConfigError(str(error)) from None
    return config
