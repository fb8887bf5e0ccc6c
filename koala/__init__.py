"""Koala: automatic image colorization in Keras 3 / TensorFlow.

`import koala` is cheap; `koala.colorize(image)` imports TensorFlow on first use.
"""

__version__ = "0.1.0"


def __getattr__(name):
    if name == "colorize":
        import importlib

        return importlib.import_module("koala.colorize")  # a callable module (see its end)
    raise AttributeError(f"module 'koala' has no attribute {name!r}")
