"""Koala: automatic image colorization in Keras 3 / TensorFlow.

`import koala` is cheap; `koala.colorize(image)` loads the model on first use, through
LiteRT when the bundle has a .tflite (no TensorFlow import), else through Keras. Both names
live in koala.inference.colorizer and are imported on first access.
"""

__version__ = "0.1.0"

_PUBLIC = ("colorize", "Colorizer")


def __getattr__(name):
    if name in _PUBLIC:
        from koala.inference import colorizer  # noqa: PLC0415 (keeps `import koala` cheap)

        return getattr(colorizer, name)
    raise AttributeError(f"module 'koala' has no attribute {name!r}")
