"""How a bundle's model runs: LiteRT when the bundle carries model.tflite, else Keras/TF.

Both runtimes map L in Lab units [N, h, w, 1] at a working shape (and, for a hint model,
koala.hints' map [N, h, w, 3]) to ab in Lab units [N, h, w, 2]. The .tflite (written by
`koala export --format tflite`) holds the model together with its input scaling and output
decoding, so the LiteRT path needs neither TensorFlow nor Keras: importing TensorFlow costs
~3.7 s and ~1 GB here, ai_edge_litert ~0.1 s. Bundles are read through koala.bundle.files
(TF-free); koala.bundle.keras_bundle only on the Keras path.

A bundle retrained in place no longer matches its .tflite and runs through Keras, with a log
line. The shipped default model is converted once on first use and cached
(koala.bundle.conversion.cached_tflite says why it does not ship a .tflite).
"""

import collections
import os
import sys
import threading

import numpy as np
from absl import logging

from koala import vividness as vividness_lib
from koala.bundle import files



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
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        # ab has 2 or 6 channels (with the vividness control), a palette's bins many more
        (self._output,) = [d for d in outputs if d["shape"][-1] <= 6]
        self._bins = next((d for d in outputs if d["shape"][-1] > 6), None)
        hint_inputs = [d for d in inputs if "hints" in d["name"]]
        self._hints = hint_inputs[0] if hint_inputs else None
        (self._input,) = [d for d in inputs if d is not self._hints]
        self.takes_hints = self._hints is not None
        signature = tuple(int(side) for side in self._input["shape_signature"][1:3])
        self.fixed_shape = None if -1 in signature else signature
        self._shape = None
        self._lock = threading.Lock()
        self.default_vividness = default_vividness

    def _resize(self, shape):
        """Reallocates the interpreter for a new working shape (h, w)."""
        self._interpreter.resize_tensor_input(self._input["index"], (1, *shape, 1), strict=True)
        if self._hints is not None:
            self._interpreter.resize_tensor_input(self._hints["index"], (1, *shape, 3),
                                                  strict=True)
        self._interpreter.allocate_tensors()
        self._shape = shape

    def _invoke(self, lightness, hint_map, output):
        """One image: L [h, w, 1], hint map [h, w, 3] or None -> the `output` tensor."""
        if lightness.shape[:2] != self._shape:
            self._resize(lightness.shape[:2])
        self._interpreter.set_tensor(self._input["index"], lightness[None])
        if self._hints is not None:
            if hint_map is None:
                hint_map = np.zeros(lightness.shape[:2] + (3,), np.float32)
            self._interpreter.set_tensor(self._hints["index"],
                                         np.asarray(hint_map, np.float32)[None])
        self._interpreter.invoke()
        return self._interpreter.get_tensor(output["index"])[0]

    def bins(self, lightness, hint_map=None):
        """A hint model's bin distribution [h/4, w/4, Q] for one L [h, w, 1] (None: the
        model has no palette)."""
        if self._bins is None:
            return None
        with self._lock:
            return self._invoke(np.asarray(lightness, np.float32), hint_map, self._bins)

    def ab(self, lightness, vividness=None, hint_maps=None):
        """L [N, h, w, 1] (Lab units) -> ab [N, h, w, 2] (Lab units) at `vividness`
        (None: the model's default; ignored by models without the control); `hint_maps`
        [N, h, w, 3] (koala.hints) for a hint model (None: no hints)."""
        lightness = np.asarray(lightness, np.float32)
        with self._lock:
            out = np.stack([self._invoke(one, None if hint_maps is None else hint_maps[index],
                                         self._output)
                            for index, one in enumerate(lightness)])
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
        input_shape = tuple(bundle.lightness_input.shape[1:3])
        self.fixed_shape = None if None in input_shape else input_shape
        self.takes_hints = bundle.has_hint_input
        self._graph = tf.function(self._call_model)  # one trace per input shape
        self._calls_per_shape = collections.Counter()

    def _call_model(self, inputs):
        return self.bundle.model(inputs, training=False)

    def bins(self, lightness, hint_map=None):
        """A hint model's bin distribution [h/4, w/4, Q] for one L [h, w, 1] (None: the
        model has no palette)."""
        import tensorflow as tf  # noqa: PLC0415

        from koala import hints as hints_lib  # noqa: PLC0415

        lightness = tf.convert_to_tensor(np.asarray(lightness, np.float32)[None])
        maps = None if hint_map is None else np.asarray(hint_map, np.float32)[None]
        output = self._call_model(self.bundle.model_inputs(lightness, maps))
        if not isinstance(output, dict) or hints_lib.PALETTE_OUTPUT not in output:
            return None
        return output[hints_lib.PALETTE_OUTPUT][0].numpy()

    def ab(self, lightness, vividness=None, hint_maps=None):
        """L [N, h, w, 1] (Lab units) -> ab [N, h, w, 2] (Lab units) at `vividness`;
        `hint_maps` [N, h, w, 3] (koala.hints) for a hint model (None: no hints).

        A graph runs the default model 4-5x faster than an eager call (20-30 vs 100-150 ms
        at 192x128 here) but costs ~1 s to trace per input shape, so a shape runs eagerly
        the first time and as a graph from its second use on.
        """
        import tensorflow as tf  # noqa: PLC0415

        self._calls_per_shape[lightness.shape] += 1
        forward = self._graph if self._calls_per_shape[lightness.shape] > 1 else self._call_model
        lightness = tf.convert_to_tensor(lightness, tf.float32)
        inputs = self.bundle.model_inputs(lightness, hint_maps)
        output = vividness_lib.select(forward(inputs), vividness,
                                      self.bundle.meta.get("vividness"))
        return self.bundle.ab_from_output(output, *lightness.shape[1:3], lightness).numpy()


def is_keras_bundle(model):
    """Whether `model` is a loaded keras_bundle.Bundle (checked without importing Keras)."""
    module = sys.modules.get("koala.bundle.keras_bundle")
    return module is not None and isinstance(model, module.Bundle)


def _litert(path, info, required):
    """LiteRTRuntime of the bundle's current .tflite (the shipped model's is converted and
    cached on first use), or None; `required`: FileNotFoundError instead of None."""
    tflite = files.current_tflite(path)
    if tflite is None and path == files.DEFAULT_DIR:
        try:
            from koala.bundle import conversion  # noqa: PLC0415 (this once: Keras and TF)

            tflite = conversion.cached_tflite(path)
        except OSError as error:  # an unwritable cache: this run goes through Keras
            logging.warning("could not cache the LiteRT copy of %s: %s", path, error)
    if tflite is None:
        if required:
            raise FileNotFoundError(f"{path} has no {files.TFLITE_FILE} converted from its "
                                    f"{files.KERAS_FILE}: `koala export --format tflite "
                                    f"--model {path}` adds one")
        logging.info("model %s: Keras/TensorFlow (%s has no %s converted from its %s; "
                     "`koala export --format tflite --model %s` adds one)", info.name, path,
                     files.TFLITE_FILE, files.KERAS_FILE, path)
        return None, info
    logging.info("model %s: LiteRT (%s)", info.name, tflite)
    return LiteRTRuntime(tflite, default_vividness=info.meta.get("vividness")), info


def _keras(path, info, required):
    from koala.bundle import keras_bundle as keras_lib  # noqa: PLC0415 (Keras and TensorFlow)

    loaded = keras_lib.load(path)
    return KerasRuntime(loaded), loaded


# engine -> (bundle path, BundleInfo, required) -> (runtime or None, what it runs); "auto"
# takes the first that can run the bundle. A new runtime is one entry.
RUNTIMES = {"litert": _litert, "keras": _keras}
ENGINES = ("auto", *RUNTIMES)


def load(model="default", engine="auto"):
    """A bundle name, path or loaded Bundle -> (runtime, BundleInfo or Bundle).

    engine: "auto" (the first of RUNTIMES that can run it: LiteRT when the bundle has a
    current .tflite, the shipped default model's built and cached on first use; else Keras),
    or a name of RUNTIMES.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    if is_keras_bundle(model):
        return KerasRuntime(model), model
    path = files.resolve(model, (files.KERAS_FILE, files.TFLITE_FILE))
    info = files.read_info(path)
    for name in RUNTIMES if engine == "auto" else (engine,):
        runtime, bundle = RUNTIMES[name](path, info, required=engine != "auto")
        if runtime is not None:
            return runtime, bundle
    raise FileNotFoundError(f"{path}: no runtime can run it")  # keras always can
