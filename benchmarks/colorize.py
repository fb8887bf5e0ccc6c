"""Cold and warm `koala colorize` file -> PNG, against the floor measured in the same run.

  python benchmarks/colorize.py [--model default] [--repeats 5] [--parity_photos 124]

cold: a fresh `koala colorize one.jpg --output DIR` process on a 1280x800 JPEG: wall time
and the child's peak RSS (the LiteRT path: no TensorFlow import when the bundle has a
.tflite; the default model's copy is built into the cache first, once).
warm: a process that has loaded the model runs the same path as the command
(colorizer_lib.colorize_files: read, colorize, write PNG) on 512x512, 1280x800 and 4000x3000
JPEGs; median of --repeats, with its peak RSS. floor: cv2 decode of the same file plus
OpenCV's default PNG encode of an output of the same size, timed in the same process;
`floor_ratio` = warm / floor. png: OpenCV's compression levels and Koala's band encoder
(koala.inference.png) at 12 MP, time and size. parity: LiteRT vs Keras on the benchmark
photos, largest difference in 8-bit levels. The inputs are a real Kodak photo resized.
Prints one JSON line.
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
import zlib

REPO = pathlib.Path(__file__).resolve().parents[1]
BENCHMARK = REPO.parent / "shared" / "data" / "benchmark"
SIZES = {"512x512": (512, 512), "1280x800": (800, 1280), "12MP": (3000, 4000)}
COLD_SIZE = "1280x800"


def write_inputs(folder):
    """name -> JPEG (quality 95, as a camera writes) of a real Kodak photo at each size."""
    import cv2  # noqa: PLC0415

    kodak = sorted((BENCHMARK / "kodak24").glob("*.png"))
    if not kodak:
        raise SystemExit("benchmarks/colorize.py needs ../shared/data/benchmark/kodak24")
    source = cv2.imread(str(kodak[4]))
    paths = {}
    for name, (height, width) in SIZES.items():
        paths[name] = pathlib.Path(folder) / f"one_{name}.jpg"
        cv2.imwrite(str(paths[name]), cv2.resize(source, (width, height),
                                                 interpolation=cv2.INTER_CUBIC),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
    return paths


def best_and_median(function, repeats):
    import numpy as np  # noqa: PLC0415

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(np.min(times))


def floor_seconds(path, repeats):
    """cv2 decode of `path` + OpenCV's default PNG encode of an image of its size."""
    import cv2  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    def floor():
        image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
        cv2.imencode(".png", image)

    return best_and_median(floor, repeats)[0]


def worker(path, model, repeats):
    """In a fresh process: warm file -> PNG through the command's own path, and the floor."""
    from koala.inference import colorizer as colorizer_lib  # noqa: PLC0415

    colorizer = colorizer_lib.Colorizer(model)
    with tempfile.TemporaryDirectory() as out:
        pairs = [(pathlib.Path(path), pathlib.Path(out) / "one.png")]

        def one():
            (error,) = [e for _, e in colorizer_lib.colorize_files(pairs, colorizer)]
            assert error is None, error

        one()  # warm-up: first shape (LiteRT allocation; Keras: eager, then graph)
        one()
        median, best = best_and_median(one, repeats)
    floor = floor_seconds(path, repeats)
    return {"engine": colorizer.runtime.engine, "warm_s": round(median, 4),
            "warm_min_s": round(best, 4), "floor_s": round(floor, 4),
            "floor_ratio": round(median / floor, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def png_settings(path, repeats):
    """Encode time and size at 12 MP: OpenCV's levels (one thread) and the band encoder."""
    import cv2  # noqa: PLC0415

    from koala import image_io  # noqa: PLC0415
    from koala.inference import png  # noqa: PLC0415

    rgb = image_io.read_image(path)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    rows = {"opencv_default": lambda: cv2.imencode(".png", bgr)[1].size}
    for level in (0, 1, 3, 6):  # 9 took 47 s at 12 MP here
        settings = [cv2.IMWRITE_PNG_COMPRESSION, level]
        rows[f"opencv_level{level}"] = (
            lambda settings=settings: cv2.imencode(".png", bgr, settings)[1].size)
    for strategy in ("Z_RLE", "Z_DEFAULT_STRATEGY"):
        for level in (1, 3):
            rows[f"bands_{strategy}_level{level}"] = (
                lambda level=level, code=getattr(zlib, strategy): len(png.encode(rgb, level, code)))
    figures = {}
    for name, encode in rows.items():
        size = encode()
        figures[name] = {"s": round(best_and_median(encode, repeats)[0], 3),
                         "mb": round(size / 1e6, 2)}
    return figures


def parity(model, count):
    """LiteRT vs Keras on `count` benchmark photos: largest 8-bit level difference."""
    import numpy as np  # noqa: PLC0415

    from koala import image_io  # noqa: PLC0415
    from koala.inference import colorizer as colorizer_lib  # noqa: PLC0415

    photos = sorted(p for p in BENCHMARK.rglob("*") if p.suffix in (".png", ".jpg"))[:count]
    lite, keras = colorizer_lib.Colorizer(model), colorizer_lib.Colorizer(model, engine="keras")
    worst, above_one = 0, 0
    for photo in photos:
        image = image_io.read_image(photo)
        difference = np.abs(colorizer_lib.colorize(image, lite).astype(np.int16)
                            - colorizer_lib.colorize(image, keras)).max()
        worst, above_one = max(worst, int(difference)), above_one + int(difference > 1)
    return {"photos": len(photos), "engines": [lite.runtime.engine, keras.runtime.engine],
            "max_level_diff": worst, "photos_above_1_level": above_one}


def run_child(command):
    """Runs a command; returns (wall seconds, peak RSS MB of that child, stdout)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{command} failed with exit code {os.waitstatus_to_exitcode(status)}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024, stdout.decode()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--parity_photos", type=int, default=124)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, args.repeats)))
        return
    from koala.inference import colorizer as colorizer_lib  # noqa: PLC0415

    colorizer_lib.Colorizer(args.model)  # the default model's LiteRT copy: built once, cached
    figures = {"benchmark": "colorize", "model": args.model, "cpus": os.cpu_count(),
               "load_average_1min": round(os.getloadavg()[0], 2)}  # others sharing the CPUs
    with tempfile.TemporaryDirectory() as scratch:
        inputs = write_inputs(scratch)
        cold = []
        for _ in range(3):
            cold.append(run_child([sys.executable, "-m", "koala.cli", "colorize",
                                   str(inputs[COLD_SIZE]), "--output", f"{scratch}/out",
                                   "--model", args.model, "--overwrite"])[:2])
        seconds, rss = sorted(cold)[1]  # the median run
        figures["cold"] = {"size": COLD_SIZE, "wall_s": round(seconds, 2),
                           "peak_rss_mb": round(rss, 1)}
        for name, path in inputs.items():
            out = run_child([sys.executable, __file__, "--worker", str(path), "--model",
                             args.model, "--repeats", str(args.repeats)])[2]
            figures[f"warm_{name}"] = json.loads(out.strip().splitlines()[-1])
        figures["png_12MP"] = png_settings(inputs["12MP"], args.repeats)
    figures["tensorflow_import_s"] = round(run_child([sys.executable, "-c",
                                                      "import tensorflow"])[0], 2)
    if args.parity_photos:
        figures["parity"] = parity(args.model, args.parity_photos)
    figures["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
