"""How a bundle's model runs: LiteRT when the bundle carries model.tflite, else Keras/TF.

Both runtimes map L in Lab units [N, h, w, 1] at a working shape to ab in Lab units
[N, h, w, 2]. The .tflite (written by `koala export --tflite`) holds the model together
with its input scaling and output decoding, so the LiteRT path needs neither TensorFlow
nor Keras: importing TensorFlow costs ~3.7 s and ~1 GB here, ai_edge_litert ~0.1 s. That
is why this module reads koala.json itself instead of going through koala.bundle (which
imports Keras).

A .tflite records the SHA-256 of the model.keras it was converted from (model.tflite.json);
a bundle retrained in place no longer matches it and runs through Keras, with a log line.
The shipped default model is converted once on first use and cached (see
_build_cached_tflite for why it does not ship a .tflite).
"""

import collections
import dataclasses
import hashlib
import json
import os
import pathlib
import sys
import threading

import numpy as np
from absl import logging

from koala import vividness as vividness_lib

META_FILE = "koala.json"  # koala.bundle's names (it imports Keras, so they are repeated)
KERAS_FILE = "model.keras"
TFLITE_FILE = "model.tflite"
TFLITE_INFO_FILE = "model.tflite.json"  # {"keras_sha256", "weights", "parity_vs_keras"}
DEFAULT_DIR = pathlib.Path(__file__).resolve().parents[1] / "weights" / "default"
ENGINES = ("auto", "litert", "keras")


@dataclasses.dataclass
class BundleInfo:
    """What koala.json says about a bundle, read without Keras."""

    meta: dict
    path: pathlib.Path

    @property
    def name(self):
        return self.meta.get("name", self.path.name)

    @property
    def size(self):
        return int(self.meta["size"])


def find_bundle(name_or_path):
    """'default' -> the shipped bundle; a run directory -> its `bundle/` (as koala.bundle)."""
    if str(name_or_path) == "default":
        path = DEFAULT_DIR
    else:
        path = pathlib.Path(name_or_path).expanduser()
        if (path / "bundle" / META_FILE).is_file():
            path = path / "bundle"
    if not (path / META_FILE).is_file() or not any(
            (path / name).is_file() for name in (KERAS_FILE, TFLITE_FILE)):
        raise FileNotFoundError(
            f"{name_or_path}: not a Koala model (expected {META_FILE} and {KERAS_FILE} or "
            f"{TFLITE_FILE} in {path}); pass --model default, a bundle directory, or a "
            "training workdir")
    return path


def file_sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def cache_dir():
    """Where .tflite copies built on first use live: $KOALA_CACHE or ~/.cache/koala, tflite/."""
    root = os.environ.get("KOALA_CACHE") or pathlib.Path(
        os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "koala"
    return pathlib.Path(root) / "tflite"


def tflite_is_current(path):
    """Whether bundle `path` has a model.tflite converted from its current model.keras."""
    return current_tflite(path, cached=False) is not None


def current_tflite(path, cached=True):
    """The .tflite converted from bundle `path`'s current model.keras, or None.

    Looked for in the bundle (model.tflite with a matching model.tflite.json), then in
    the cache, where copies are named by the SHA-256 of their model.keras (~30 ms to hash).
    """
    tflite, keras_file = path / TFLITE_FILE, path / KERAS_FILE
    if not keras_file.is_file():
        return tflite if tflite.is_file() else None  # a LiteRT-only bundle
    digest = file_sha256(keras_file)
    try:
        recorded = json.loads((path / TFLITE_INFO_FILE).read_text()).get("keras_sha256")
    except (OSError, ValueError):
        recorded = None
    if tflite.is_file() and recorded == digest:
        return tflite
    copy = cache_dir() / f"{digest}.tflite"
    return copy if cached and copy.is_file() else None


class LiteRTRuntime:
    """A .tflite in ai_edge_litert's interpreter, resized to each new working shape.

    Resizing the input to a new shape and reallocating took 13-17 ms the first time
    (XNNPACK's set-up) and under 1 ms after, against ~30 ms for an invoke at 192x288 here,
    so a fixed set of shapes would gain nothing. One image per invoke. The interpreter is
    not thread-safe, so calls are serialised (the web app serves from many threads).
    """

    engine = "LiteRT"

    def __init__(self, model, threads=None, default_vividness=None):
        """model: a .tflite path, or its bytes; default_vividness: its bundle's meta."""
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 (optional path)

        source = ({"model_content": bytes(model)} if isinstance(model, (bytes, bytearray))
                  else {"model_path": str(model)})
        self._interpreter = Interpreter(**source, num_threads=threads or os.cpu_count() or 1)
        (self._input,), (self._output,) = (self._interpreter.get_input_details(),
                                           self._interpreter.get_output_details())
        signature = tuple(int(side) for side in self._input["shape_signature"][1:3])
        self.fixed_shape = None if -1 in signature else signature
        self._shape = None
        self._lock = threading.Lock()
        self.default_vividness = default_vividness

    def ab(self, lightness, vividness=None):
        """L [N, h, w, 1] (Lab units) -> ab [N, h, w, 2] (Lab units) at `vividness`
        (None: the model's default; ignored by models without the control)."""
        lightness = np.asarray(lightness, np.float32)
        out = []
        with self._lock:
            for one in lightness:
                if one.shape != self._shape:
                    self._interpreter.resize_tensor_input(self._input["index"], (1,) + one.shape,
                                                          strict=True)
                    self._interpreter.allocate_tensors()
                    self._shape = one.shape
                self._interpreter.set_tensor(self._input["index"], one[None])
                self._interpreter.invoke()
                out.append(self._interpreter.get_tensor(self._output["index"])[0])
        out = np.stack(out)
        if out.shape[-1] == 2:  # no vividness control
            return out
        ab, accurate, vivid = out[..., :2], out[..., 2:4], out[..., 4:]  # tflite_function's order
        return vividness_lib.select(
            {"ab": ab, vividness_lib.ACCURATE: accurate, vividness_lib.VIVID: vivid}, vividness,
            self.default_vividness)


class KerasRuntime:
    """A koala.bundle.Bundle in Keras (TensorFlow): bundles without a current .tflite."""

    engine = "Keras"

    def __init__(self, bundle):
        import tensorflow as tf  # noqa: PLC0415 (only this runtime needs TensorFlow)

        self.bundle = bundle
        input_shape = tuple(bundle.model.inputs[0].shape[1:3])
        self.fixed_shape = None if None in input_shape else input_shape
        self._graph = tf.function(self._call_model)  # one trace per input shape
        self._calls_per_shape = collections.Counter()

    def _call_model(self, scaled):
        return self.bundle.model({"L": scaled}, training=False)

    def ab(self, lightness, vividness=None):
        """L [N, h, w, 1] (Lab units) -> ab [N, h, w, 2] (Lab units) at `vividness`.

        A graph runs the default model 4-5x faster than an eager call (20-30 vs 100-150 ms
        at 192x128 here) but costs ~1 s to trace per input shape, so a shape runs eagerly
        the first time and as a graph from its second use on.
        """
        import tensorflow as tf  # noqa: PLC0415

        self._calls_per_shape[lightness.shape] += 1
        forward = self._graph if self._calls_per_shape[lightness.shape] > 1 else self._call_model
        lightness = tf.convert_to_tensor(lightness, tf.float32)
        output = vividness_lib.select(forward(self.bundle.model_input(lightness)), vividness,
                                      self.bundle.meta.get("vividness"))
        return self.bundle.ab_from_output(output, *lightness.shape[1:3], lightness).numpy()


def is_keras_bundle(model):
    """Whether `model` is a loaded koala.bundle.Bundle (checked without importing Keras)."""
    module = sys.modules.get("koala.bundle")
    return module is not None and isinstance(model, module.Bundle)


def load(model="default", engine="auto"):
    """A bundle name, path or loaded Bundle -> (runtime, BundleInfo or Bundle).

    engine: "auto" (LiteRT when the bundle has a current .tflite; the shipped default
    model gets one built and cached on first use), "litert" or "keras".
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    if is_keras_bundle(model):
        return KerasRuntime(model), model
    path = find_bundle(model)
    info = BundleInfo(json.loads((path / META_FILE).read_text()), path)
    tflite = current_tflite(path) if engine != "keras" else None
    if engine == "litert" and tflite is None:
        raise FileNotFoundError(f"{path} has no {TFLITE_FILE} converted from its {KERAS_FILE}: "
                                f"`koala export --tflite --model {path}` adds one")
    if tflite is None and engine == "auto" and path.resolve() == DEFAULT_DIR:
        try:
            tflite = _build_cached_tflite(path)
        except OSError as error:  # an unwritable cache: this run goes through Keras
            logging.warning("could not cache the LiteRT copy of %s: %s", path, error)
    if tflite is not None:
        logging.info("model %s: LiteRT (%s)", info.name, tflite)
        return LiteRTRuntime(tflite, default_vividness=info.meta.get("vividness")), info
    if engine == "auto":
        logging.info("model %s: Keras/TensorFlow (%s has no %s converted from its %s; "
                     "`koala export --tflite --model %s` adds one)", info.name, path,
                     TFLITE_FILE, KERAS_FILE, path)
    from koala import bundle as bundle_lib  # noqa: PLC0415 (imports Keras and TensorFlow)

    keras_bundle = bundle_lib.load(path)
    return KerasRuntime(keras_bundle), keras_bundle


def _build_cached_tflite(path):
    """The shipped model's LiteRT copy, converted once (~15 s with TensorFlow) and cached.

    Not shipped: float32 is 19 MB (over the package's budget for it) and float16 weights
    differ from Keras by up to 3 levels of 8 bits on benchmark photos (float32: 1 level).
    """
    from koala import bundle as bundle_lib  # noqa: PLC0415 (this once: Keras and TensorFlow)
    from koala.serving import tflite  # noqa: PLC0415

    target = cache_dir() / f"{file_sha256(path / KERAS_FILE)}.tflite"
    logging.info("model %s: converting it to LiteRT once (float32, cached as %s); later "
                 "runs do not import TensorFlow", path.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    staged.write_bytes(tflite.convert_tflite(bundle_lib.load(path), weights="float32"))
    staged.replace(target)  # atomic: concurrent first runs each write a complete file
    return target
