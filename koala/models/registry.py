"""Name -> model builder, so configs, bundles and the CLI name a system by a string.

A builder registers itself with one decorator line:

    @register("effnet_unet", backbone="efficientnet_lite0", output="regression")
    def build(input_size=None, **config) -> keras.Model: ...

`backbone` and `output` are what `koala models` and bundles report. `output` is
"regression" (an "ab" output, tanh, [-1, 1]), "classification" (logits over
koala.color.ab_bins()) or "binned" (logits over per-channel bins, seed 004). When either
depends on the config, pass a function config_dict -> str instead of a string.
"""

import dataclasses
from typing import Callable, Union


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered model: its builder and what it reports about itself."""

    builder: Callable
    backbone: Union[str, Callable]
    output: Union[str, Callable]

    def describe(self, config):
        """{"backbone", "output", "summary"} for keyword `config` (defaults when empty)."""
        def resolve(value):
            return value(config) if callable(value) else value

        doc = (self.builder.__doc__ or "").strip()
        return {"backbone": resolve(self.backbone), "output": resolve(self.output),
                "summary": doc.splitlines()[0] if doc else ""}


_ENTRIES = {}


def register(name, *, backbone, output):
    """Decorator registering `builder` under `name`; its docstring's first line is the summary."""

    def wrap(builder):
        if name in _ENTRIES:
            raise ValueError(f"model {name!r} is registered twice")
        _ENTRIES[name] = Entry(builder, backbone, output)
        return builder

    return wrap


def entry(name):
    """The Entry of `name`, or a KeyError that lists the known names."""
    try:
        return _ENTRIES[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(names())}") from None


def names():
    """Registered model names, sorted."""
    return sorted(_ENTRIES)
