"""Selects how the default model decodes (working size, head blend, temperature) on the
validation photos, and ships the chosen bundle into koala/weights/default/.

    python data_prep/select_default_model.py --workdir runs/default [--ship]

Knobs: working size; the share w of the regression head; the annealed-mean temperature T;
and alpha, the strength of a prior correction of the bin distribution (logits + alpha * log
of Zhang's rebalancing weights, lambda 0.5, prior from the training photos): an unweighted
classifier's mode is grayish, and this makes it vivid without retraining.
The targets (issue 7) are relative to the gray baseline: PSNR +1.2 dB, AuC +2.5 points,
colorfulness 0.8-1.25 x the truth. Each candidate is scored by its progress towards the two
accuracy targets, among those whose colorfulness ratio is in range. Only validation photos
are used: the benchmark photos are never looked at here.
"""

import argparse
import itertools
import json
import pathlib
import time

import cv2
import numpy as np
import tensorflow as tf

from koala import bundle as bundle_lib
from koala import color, colorize, demo, metrics
from koala.models import effnet_unet

REPO = pathlib.Path(__file__).resolve().parents[1]
SIZES = (192, 224, 256)
WEIGHTS = (0.0, 0.25, 0.5, 1.0)  # share of the regression head
TEMPERATURES = (0.2, 0.38, 0.6, 1.0)
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)  # strength of the prior correction
PRIOR_PHOTOS = 2000
COLORFULNESS_RANGE = (0.8, 1.25)
STRIDE = 32


def load_trained(workdir):
    """The two-head model from final.keras, else from the latest checkpoint."""
    final = workdir / "final.keras"
    if final.is_file():
        return tf.keras.models.load_model(final, compile=False), "final.keras"
    model = effnet_unet.build(weights=None)
    latest = tf.train.latest_checkpoint(workdir / "checkpoints")
    if latest is None:
        raise FileNotFoundError(f"{workdir}: neither final.keras nor a checkpoint")
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    return model, latest


def training_prior_bias(data, count=PRIOR_PHOTOS):
    """log of Zhang's rebalancing weights (lambda 0.5) from the training photos' ab prior."""
    paths = sorted(pathlib.Path(data, "photos", "train").rglob("*.jpg"))
    counts = np.zeros(len(color.ab_bins()), np.int64)
    for path in paths[::max(1, len(paths) // count)]:
        rgb = cv2.resize(colorize.read_image(path), (64, 64), interpolation=cv2.INTER_AREA)
        counts += color.histogram_counts(color.rgb_to_lab_cv2(rgb)[..., 1:])
    return np.log(color.rebalancing_weights(color.smoothed_prior(counts), 0.5))


def _softmax(logits, temperature):
    z = logits / temperature
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def candidates_for_photo(model, rgb, size):
    """(ab regression, logits) at the working shape of one photo."""
    photo = colorize.split(rgb)
    height, width = working_shape = colorize.working_shape(*photo.lightness.shape, size, STRIDE)
    small = cv2.resize(photo.lightness, (width, height), interpolation=cv2.INTER_AREA)
    outputs = model({"L": color.scale_l(small[None, ..., None])}, training=False)
    return (photo, working_shape, color.unscale_ab(outputs["ab"][0].numpy()),
            outputs["ab_logits"][0].numpy())


def evaluate_grid(model, paths, bias, sizes=SIZES):
    """Per (size, weight, temperature, alpha): mean PSNR, AuC and colorfulness ratio."""
    bins = color.ab_bins()
    sums = {}
    for path in paths:
        rgb = colorize.read_image(path)
        truth_ab = color.rgb_to_lab_cv2(rgb)[..., 1:]
        truth_colorfulness = metrics.colorfulness(rgb)
        gray = demo.gray_version(rgb)
        baseline = (metrics.psnr(gray / 255.0, rgb / 255.0), metrics.auc(
            np.zeros_like(truth_ab), truth_ab), metrics.colorfulness(gray), truth_colorfulness)
        sums.setdefault("gray", []).append(baseline)
        for size in sizes:
            photo, (height, width), ab_reg, logits = candidates_for_photo(model, rgb, size)
            for temperature, alpha in itertools.product(TEMPERATURES, ALPHAS):
                annealed = _softmax(logits + alpha * bias, temperature) @ bins
                annealed = cv2.resize(annealed, (width, height), interpolation=cv2.INTER_LINEAR)
                for weight in WEIGHTS:
                    if weight == 1.0 and (temperature, alpha) != (TEMPERATURES[0], ALPHAS[0]):
                        continue  # the regression head alone: one candidate is enough
                    ab = weight * ab_reg + (1 - weight) * annealed
                    out = colorize.recombine(photo.lightness, ab)
                    out_ab = color.rgb_to_lab_cv2(out)[..., 1:]
                    key = (size, weight, temperature, alpha)
                    sums.setdefault(key, []).append((
                        metrics.psnr(out / 255.0, rgb / 255.0), metrics.auc(out_ab, truth_ab),
                        metrics.colorfulness(out), truth_colorfulness))
    table = {}
    for key, rows in sums.items():
        rows = np.array(rows)
        table[key] = {"psnr": rows[:, 0].mean(), "auc": rows[:, 1].mean(),
                      "colorfulness_ratio": rows[:, 2].mean() / rows[:, 3].mean()}
    return table


def choose(table):
    """Best candidate by progress to the PSNR and AuC targets, colorfulness in range."""
    gray = table["gray"]

    def score(row):
        return (row["psnr"] - gray["psnr"]) / 1.2 + (row["auc"] - gray["auc"]) / 2.5

    low, high = COLORFULNESS_RANGE
    keys = [k for k in table if k != "gray"]
    in_range = [k for k in keys if low <= table[k]["colorfulness_ratio"] <= high]
    if not in_range:  # then the most vivid of those within 70% of the best accuracy
        best = max(score(table[k]) for k in keys)
        in_range = [max((k for k in keys if score(table[k]) >= 0.7 * best),
                        key=lambda k: table[k]["colorfulness_ratio"])]
    return max(in_range, key=lambda k: score(table[k])), score


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/default")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--limit", type=int, default=400, help="validation photos used")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="working sizes")
    parser.add_argument("--ship", action="store_true", help="write koala/weights/default")
    args = parser.parse_args()
    workdir = pathlib.Path(args.workdir)
    model, source = load_trained(workdir)
    paths = sorted(pathlib.Path(args.data, "photos", "val").rglob("*.jpg"))
    paths = paths[::max(1, len(paths) // args.limit)][:args.limit]
    start = time.time()
    bias = training_prior_bias(args.data)
    table = evaluate_grid(model, paths, bias, [int(s) for s in args.sizes.split(",")])
    best, score = choose(table)
    size, weight, temperature, alpha = best
    rows = [{"size": k[0], "weight": k[1], "temperature": k[2], "alpha": k[3], **v,
             "score": score(v)} for k, v in table.items() if k != "gray"]
    report = {"source": str(source), "photos": len(paths), "seconds": time.time() - start,
              "gray": table["gray"], "chosen": {"size": size, "weight": weight,
                                                "temperature": temperature, "alpha": alpha,
                                                **table[best]},
              "candidates": sorted(rows, key=lambda r: -r["score"])}
    (workdir / "selection.json").write_text(json.dumps(report, indent=1, default=float))
    print(json.dumps({k: report[k] for k in ("photos", "gray", "chosen")}, default=float))
    if args.ship:
        blended = effnet_unet.inference_model(model, weight, temperature, alpha * bias)
        meta = {"model": "effnet_unet", "name": "default", "size": size, "stride": STRIDE,
                "fit": "aspect", "output": "regression", "head_weight": weight,
                "temperature": temperature, "prior_alpha": alpha, "selection": report["chosen"],
                "trained": json.loads((workdir / "args.json").read_text())}
        bundle_lib.save(bundle_lib.DEFAULT_DIR, blended, meta)
        print(f"shipped to {bundle_lib.DEFAULT_DIR}")


if __name__ == "__main__":
    main()
