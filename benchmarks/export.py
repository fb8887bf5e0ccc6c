"""Export figures: SavedModel size and latency, TFLite size, latency and parity with Keras.

Prints one JSON line. The SavedModel is timed in a fresh process (as TF Serving would load
it: no Keras objects in memory), on JPEG bytes of a real photo at 256x256 and ~1 MP, through
the serving_default signature (decode, colorize, encode PNG). TFLite runs at the working
size, one image at a time. Parity: max / mean |ab| difference (Lab units) of the TFLite
files against the Keras model on the benchmark photos (../shared/data/benchmark).

    nice -n 10 python benchmarks/export.py [--model default|PATH] [--photos DIR]

Until the shipped default model exists, --model default falls back to a stand-in with the
default architecture and random weights ("stand_in": true): speed and size do not depend
on weight values; parity does somewhat.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SIZES = {"256x256": (256, 256), "1MP": (1152, 872)}  # (width, height); 1152 x 872 = 1.0 MP


def stand_in_bundle(directory, size=160):
    """The default model's architecture (effnet_unet, regression head), random weights."""
    from koala import models
from koala.bundle import keras_bundle

    model = models.build("effnet_unet", weights=None, with_logits=False)
    keras_bundle.save(directory, model, {"model": "effnet_unet", "size": size,
                                         "output": "regression",
                                         "name": "stand-in (random weights)"})
    return keras_bundle.load(directory)


def load_bundle(name, scratch):
    from koala.bundle import keras_bundle

    try:
        return keras_bundle.load(name), False
    except FileNotFoundError:
        if name != "default":
            raise
        return stand_in_bundle(scratch / "stand_in"), True


def median_seconds(function, repeats):
    function()  # warm-up: tracing, allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def jpeg_of_size(photo, size):
    rgb = cv2.resize(cv2.imread(str(photo)), size, interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def measure_saved_model(directory, photo, repeats):
    """Run in a fresh process: load time and per-image serving_default latency."""
    import tensorflow as tf

    start = time.perf_counter()
    serve = tf.saved_model.load(directory).signatures["serving_default"]
    figures = {"load_s": round(time.perf_counter() - start, 2)}
    for label, size in SIZES.items():
        batch = tf.constant([jpeg_of_size(photo, size)])
        seconds = median_seconds(lambda: serve(image_bytes=batch)["colorized_bytes"].numpy(),
                                 repeats)
        figures[f"latency_ms_{label}"] = round(1000 * seconds, 1)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--photos", default=str(REPO.parent / "shared" / "data" / "benchmark"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--measure_saved_model", help=argparse.SUPPRESS)  # the fresh process
    args = parser.parse_args()
    photos = sorted(p for p in pathlib.Path(args.photos).rglob("*")
                    if p.suffix.lower() in (".jpg", ".png"))
    if not photos:
        sys.exit(f"no photos under {args.photos}")
    if args.measure_saved_model:
        print(json.dumps(measure_saved_model(args.measure_saved_model, photos[0], args.repeats)))
        return

    from koala.serving import saved_model, tflite

    with tempfile.TemporaryDirectory() as scratch:
        scratch = pathlib.Path(scratch)
        bundle, stand_in = load_bundle(args.model, scratch)
        start = time.perf_counter()
        path = pathlib.Path(saved_model.export(
            bundle, scratch / "export", formats=("saved_model", "tflite"), quantize="dynamic",
            parity_photos=photos))
        export_seconds = time.perf_counter() - start
        meta = saved_model.read_metadata(path)
        fresh = subprocess.run(
            [sys.executable, __file__, "--photos", args.photos, "--repeats", str(args.repeats),
             "--measure_saved_model", str(path)], capture_output=True, text=True, check=True)
        lightness = tflite.working_size_lightness(photos[:1], bundle.size)
        tflite = {}
        for name, figures in meta["tflite"].items():
            model_bytes = (path / name).read_bytes()
            tflite[name] = {
                "mb": round(figures["bytes"] / 1e6, 2),
                "latency_ms": round(1000 * median_seconds(
                    lambda: tflite.tflite_ab(model_bytes, lightness), args.repeats), 1),
                "max_ab_diff": round(figures["parity_vs_keras"]["max_ab_diff"], 4),
                "mean_ab_diff": round(figures["parity_vs_keras"]["mean_ab_diff"], 5),
            }
    print(json.dumps({
        "model": bundle.name, "stand_in": stand_in, "working_size": bundle.size,
        "export_s": round(export_seconds, 1),
        "saved_model_mb": round(meta["saved_model_bytes"] / 1e6, 2),
        "saved_model": json.loads(fresh.stdout.strip().splitlines()[-1]),
        "tflite": tflite, "parity_photos": len(photos),
    }))


if __name__ == "__main__":
    main()
