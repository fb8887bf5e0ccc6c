"""Name -> entry tables where training grows (losses, input pipelines), filled by decorators.

A config names a loss (config.loss.name) or an input pipeline (config.data.pipeline) by a
string; adding one is one decorated function beside its code, nothing else (see
koala.training.losses and koala.training.inputs for what their entries declare).
"""

from koala.training.config import ConfigError


class Registry:
    """The entries of one kind ("loss", "data.pipeline"), by name."""

    def __init__(self, kind):
        self.kind = kind
        self._entries = {}

    def decorator(self, name, make_entry):
        """A decorator that registers make_entry(function) as `name`, returning the function."""

        def wrap(function):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = make_entry(function)
            return function

        return wrap

    def get(self, name):
        """The entry of `name`; an unknown name is a ConfigError that lists the known ones."""
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of {self.names()}")
        return self._entries[name]

    def names(self):
        return sorted(self._entries)

    def items(self):
        return self._entries.items()
