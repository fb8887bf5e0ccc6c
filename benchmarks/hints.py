"""What colour hints buy: Zhang et al. 2017's sweep on photos/val, beside the automatic path.

  python benchmarks/hints.py [--model default] [--baseline PATH] [--photos 100] [--counts 0,1,10]

Each photo of ../shared/data/photos/val (every k-th, sorted, to `--photos`) is resized to
256x256 and colorized with N simulated 6x6 hints of its true mean colour
(koala.evaluation.hint_sweep); PSNR / AuC / colourfulness per N. In the same run:
the gray baseline, and the automatic path of `--baseline` (a model without hints, e.g. the
previous default's bundle) on the same photos; `*_gain_db` is against the model's own N = 0.
Prints one JSON line.
"""

import argparse
import json
import pathlib

from koala.evaluation import hint_sweep

REPO = pathlib.Path(__file__).resolve().parents[1]
VAL = REPO.parent / "shared" / "data" / "photos" / "val"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--baseline", default=None, help="an automatic model to compare at N=0")
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--counts", default=",".join(map(str, hint_sweep.COUNTS)))
    parser.add_argument("--vividness", type=float, default=None)
    args = parser.parse_args()
    from koala import image_io  # noqa: PLC0415
    from koala.inference.colorizer import Colorizer  # noqa: PLC0415

    paths = sorted(p for p in VAL.rglob("*") if p.suffix.lower() in image_io.IMAGE_SUFFIXES)
    if not paths:
        raise SystemExit("benchmarks/hints.py needs ../shared/data/photos/val")
    paths = paths[::max(1, len(paths) // args.photos)][:args.photos]
    photos = [image_io.to_rgb8(image_io.read_image(p)) for p in paths]
    counts = tuple(int(c) for c in args.counts.split(","))
    result = hint_sweep.sweep(Colorizer(args.model), photos, counts, vividness=args.vividness)
    out = {"model": args.model, "photos": result["photos"], "gray_psnr": result["gray"]["psnr"]}
    if args.baseline:
        baseline = hint_sweep.sweep(Colorizer(args.baseline), photos, (0,),
                                    vividness=args.vividness)["by_hints"][0]
        out["baseline"] = args.baseline
        out["baseline_psnr"] = round(baseline["psnr"], 3)
    own_automatic = result["by_hints"].get(0, {}).get("psnr")
    for count, values in result["by_hints"].items():
        out[f"psnr_{count}"] = round(values["psnr"], 3)
        out[f"psnr_se_{count}"] = round(values["psnr_se"], 3)
        out[f"auc_{count}"] = round(values["auc"], 3)
        out[f"colorfulness_{count}"] = round(values["colorfulness_ratio"], 3)
        out[f"zhang_2017_psnr_{count}"] = values["zhang_2017_psnr"]
        if own_automatic is not None:
            out[f"gain_db_{count}"] = round(values["psnr"] - own_automatic, 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
