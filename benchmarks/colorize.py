"""Latency and peak memory of `koala colorize` for 256x256, 1 MP and 12 MP colour photos.

  python benchmarks/colorize.py [--model default] [--repeats 5]

warm: a process that has loaded the model colorizes an in-memory RGB array (median of
--repeats runs, plus the split of the 12 MP time into L / model / recombination); each
size runs in its own process so that its peak RSS is its own. cold: a fresh
`koala colorize one.jpg --output DIR` process, wall time and peak RSS (TF import included).
Prints one JSON line. Without the shipped default model the tiny test bundle is used
(tests/colorize_helpers.py) and the JSON says so: the figures then measure the pipeline,
not a real network.
"""

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
SIZES = {"256x256": (256, 256), "1MP": (864, 1152), "12MP": (3000, 4000)}


def source_photo():
    """A real photo if ../shared is there (Kodak), else a smooth synthetic one."""
    import numpy as np  # noqa: PLC0415

    from koala.colorize import read_image  # noqa: PLC0415

    kodak = sorted((REPO.parent / "shared/data/benchmark/kodak24").glob("*.png"))
    if kodak:
        return read_image(kodak[0])
    y, x = np.mgrid[0:512, 0:768]
    return np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)


def photo_of(shape):
    import cv2  # noqa: PLC0415

    height, width = shape
    return cv2.resize(source_photo(), (width, height), interpolation=cv2.INTER_CUBIC)


def worker(size_name, model, repeats):
    """In a fresh process: load, warm up, time; return the figures with this process' peak RSS."""
    import numpy as np  # noqa: PLC0415

    from koala import colorize  # noqa: PLC0415

    image = photo_of(SIZES[size_name])
    colorizer = colorize.Colorizer(model)
    for _ in range(2):  # warm-up: eager first call, then the graph is traced
        colorize.colorize(image, colorizer)
    times, parts = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        photo = colorize.split(image)
        after_split = time.perf_counter()
        ab = colorizer.predict_ab([photo.lightness])[0]
        after_model = time.perf_counter()
        colorize.recombine(photo.lightness, ab, photo.dtype)
        end = time.perf_counter()
        times.append(end - start)
        parts.append((after_split - start, after_model - after_split, end - after_model))
    median = np.median(np.array(parts), axis=0)
    return {"warm_s": round(float(np.median(times)), 4),
            "warm_min_s": round(float(np.min(times)), 4),
            "lightness_s": round(float(median[0]), 4), "model_s": round(float(median[1]), 4),
            "recombine_s": round(float(median[2]), 4),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def run_child(command):
    """Runs a command; returns (wall seconds, peak RSS MB of that child, stdout)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"{command} failed with exit code {process.returncode}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024, stdout.decode()


def resolve_model(model, scratch):
    """(model path or name, note): falls back to the tiny test bundle without a default."""
    from koala import bundle  # noqa: PLC0415

    try:
        bundle.resolve(model)
        return model, None
    except FileNotFoundError:
        sys.path.insert(0, str(REPO / "tests"))
        from colorize_helpers import save_tiny_bundle  # noqa: PLC0415

        path = save_tiny_bundle(pathlib.Path(scratch) / "tiny_bundle")
        return str(path), f"model {model!r} not found: used the tiny 2-layer test bundle"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, args.repeats)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        model, note = resolve_model(args.model, scratch)
        figures = {"benchmark": "colorize", "model": args.model, "cpus": os.cpu_count()}
        if note:
            figures["note"] = note
        for name in SIZES:
            _, _, out = run_child([sys.executable, __file__, "--worker", name, "--model", model,
                                   "--repeats", str(args.repeats)])
            figures[name] = json.loads(out.strip().splitlines()[-1])
        import cv2  # noqa: PLC0415

        for name in ("1MP", "12MP"):
            one = pathlib.Path(scratch) / f"one_{name}.jpg"
            cv2.imwrite(str(one), cv2.cvtColor(photo_of(SIZES[name]), cv2.COLOR_RGB2BGR))
            seconds, rss, _ = run_child([sys.executable, "-m", "koala.cli", "colorize", str(one),
                                         "--output", str(pathlib.Path(scratch) / "out"),
                                         "--model", model, "--overwrite"])
            figures[name]["cold_s"] = round(seconds, 2)
            figures[name]["cold_peak_rss_mb"] = round(rss, 1)
        seconds, rss, _ = run_child([sys.executable, "-c", "import tensorflow"])
        figures["tensorflow_import_s"] = round(seconds, 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
