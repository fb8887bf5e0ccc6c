"""Honest video figures: flicker along the true motion and error against the true colours.

  python benchmarks/video.py [--model default] [--photos 4] [--frames 16]

Each clip pans (8 photo px a frame) and zooms (1.5% a frame) over a real Kodak photo
(koala.inference.video.pan_zoom_clip); the colorizer gets its gray version with film grain,
the true colours are kept. For each of per-frame colorization, the consistent path (Farneback flow)
and the same smoother with zero flow, it reports the motion-compensated flicker (mean |ab -
previous ab warped along the TRUE flow|, Lab units) and the mean ab distance to the truth,
averaged over the clips; `*_ratio` figures are against per-frame in the same run.
Prints one JSON line.
"""

import argparse
import json
import pathlib

import cv2
import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
KODAK = REPO.parent / "shared" / "data" / "benchmark" / "kodak24"


def zero_flow(lightness, previous):
    return np.zeros(lightness.shape + (2,), np.float32)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=16)
    args = parser.parse_args()
    from koala.inference import video  # noqa: PLC0415
    from koala.inference.colorizer import Colorizer  # noqa: PLC0415

    paths = sorted(KODAK.glob("*.png"))
    if not paths:
        raise SystemExit("benchmarks/video.py needs ../shared/data/benchmark/kodak24")
    paths = paths[::max(1, len(paths) // args.photos)][:args.photos]
    colorizer = Colorizer(args.model)
    runs = {"per_frame": lambda: None, "consistent": video.TemporalSmoother,
            "zero_flow": lambda: video.TemporalSmoother(flow=zero_flow)}
    figures = {name: {"flicker": [], "ab_error": []} for name in runs}
    for path in paths:
        truths, affines = video.pan_zoom_clip(cv2.imread(str(path))[..., ::-1].copy(),
                                              frames=args.frames)
        for name, smoother in runs.items():
            result = video.measure_clip(colorizer, truths, affines, smoother())
            for key, value in result.items():
                figures[name][key].append(value)
    out = {"model": args.model, "clips": [p.name for p in paths], "frames": args.frames}
    for name, values in figures.items():
        for key, series in values.items():
            out[f"{name}_{key}"] = round(float(np.mean(series)), 4)
            out[f"{name}_{key}_ratio"] = round(float(np.mean(series))
                                               / float(np.mean(figures["per_frame"][key])), 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
