"""Koala: automatic image colorization in Keras 3 / TensorFlow.

`import koala` is cheap; `koala.colorize(image)` loads the model on first use, through
LiteRT when the bundle has a .tflite (no TensorFlow import), else through Keras.
"""

__version__ = "0.1.0"


def __getattr__(name):
    if name == "colorize":
        import importlib

        return importlib.import_module("koala.colorize")  # a callable module (see its end)
    if name == "Colorizer":  # keep one to stay warm: koala.Colorizer("default")
        import importlib

        return importlib.import_module("koala.colorize").Colorizer
    raise AttributeError(f"module 'koala' has no attribute {name!r}")
