"""Chooses how the default model decodes, on validation photos only, and ships the bundle.

    python data_prep/select_default_model.py --workdir runs/default [--ship]

`koala train --experiment default` leaves a two-head model (ab regression + ab bin logits) in
WORKDIR/bundle (or checkpoints). Decoding knobs: the working size; w, the share of the
regression head; T, the annealed-mean temperature; alpha, the strength of the prior
correction (bin logits + alpha * log of Zhang's rebalancing weights, lambda 0.5, prior from
the training photos), which makes an unweighted classifier vivid without retraining; g, a
chroma gain on the result, which makes a muted (mean-of-colours) decoding vivid uniformly.

Three blends of the grid anchor the vividness control (koala.vividness), all at one working
size: "accurate" (V = 0), the best progress towards the PSNR and AuC targets; "vivid"
(V = 1), the best-scoring blend at least 1.15x as colourful as the truth; "default", the blend
nearest to meeting all three targets at once (PSNR and AuC gains, colourfulness 0.9-1.15x the
truth's: the largest smallest share, see target_shares), placed on the control by its
colourfulness between the two ends. The benchmark photos are never read here.
"""

import argparse
import itertools
import json
import pathlib
import time

import cv2
import numpy as np
import tensorflow as tf

from koala import color, image_io, photo, vividness
from koala.bundle import keras_bundle as bundle_lib
from koala.evaluation import metrics
from koala.data import photo_crops
from koala.models import effnet_unet

REPO = pathlib.Path(__file__).resolve().parents[1]
SIZES = (192, 224, 256)
WEIGHTS = (0.0, 0.25, 0.5, 1.0)  # share of the regression head
TEMPERATURES = (0.2, 0.38, 0.6)
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5)  # strength of the prior correction
GAINS = (1.0, 1.2, 1.35, 1.5, 1.65, 1.8, 2.0)  # chroma gain on the blend
GAIN_ALPHAS = ALPHAS[:2]  # gains > 1 with a strong prior correction only overshoot (val)
VIVIDNESS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))
COLORFULNESS_RANGE = (0.9, 1.15)
TARGETS = {"psnr": 1.4, "auc": 2.2}  # gains over gray asked of the default (issue 15)
STRIDE = 32
ROLES = ("accurate", "default", "vivid")  # the anchors of koala.vividness, V = 0, V*, 1
LOG_EVERY = 50  # training-loss lines kept in the shipped log (validation lines: all)


def load_trained(workdir):
    """The two-head model `koala train` left in workdir (its bundle, else its newest
    checkpoint), rebuilt to accept any working size (training fixes the input shape)."""
    model = effnet_unet.build(weights=None)
    if (workdir / "bundle" / bundle_lib.META_FILE).is_file():
        model.set_weights(bundle_lib.load(workdir).model.get_weights())
        return model, str(workdir / "bundle")
    latest = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
    if latest is None:
        raise FileNotFoundError(f"{workdir}: neither bundle/ nor checkpoints/")
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    return model, latest


def training_prior_bias(data):
    """log of Zhang's rebalancing weights (lambda 0.5) from the training photos' ab prior."""
    prior = photo_crops.ab_prior(str(pathlib.Path(data, "photos", "train")))
    return np.log(color.rebalancing_weights(prior, 0.5))


def _softmax(logits, temperature):
    z = logits / temperature
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class PhotoHeads:
    """One validation photo, its truth, and the model's two heads at one working size."""

    def __init__(self, model, rgb, size):
        self.rgb, self.photo = rgb, photo.split(rgb)
        self.truth_ab = color.rgb_to_lab_cv2(rgb)[..., 1:]
        height, width = self.shape = photo.working_shape(*self.photo.lightness.shape, size,
                                                            STRIDE)
        small = cv2.resize(self.photo.lightness, (width, height), interpolation=cv2.INTER_AREA)
        outputs = model({"L": color.scale_l(small[None, ..., None])}, training=False)
        self.ab_reg = color.unscale_ab(outputs["ab"][0].numpy())
        self.logits = outputs["ab_logits"][0].numpy()

    def decode(self, weight, temperature, alpha, gain, bias):
        annealed = _softmax(self.logits + alpha * bias, temperature) @ color.ab_bins()
        height, width = self.shape
        annealed = cv2.resize(annealed, (width, height), interpolation=cv2.INTER_LINEAR)
        return gain * (weight * self.ab_reg + (1 - weight) * annealed)

    def measure(self, ab):
        """(PSNR, AuC, colourfulness of the output, of the truth) for working-size ab."""
        out = photo.recombine(self.photo.lightness, ab)
        out_ab = color.rgb_to_lab_cv2(out)[..., 1:]
        return (metrics.psnr(out / 255.0, self.rgb / 255.0), metrics.auc(out_ab, self.truth_ab),
                metrics.colorfulness(out), metrics.colorfulness(self.rgb))


def gray_row(rgb):
    gray = photo.gray_version(rgb)
    truth_ab = color.rgb_to_lab_cv2(rgb)[..., 1:]
    return (metrics.psnr(gray / 255.0, rgb / 255.0), metrics.auc(np.zeros_like(truth_ab), truth_ab),
            metrics.colorfulness(gray), metrics.colorfulness(rgb))


def summarise(rows):
    rows = np.array(rows)
    return {"psnr": rows[:, 0].mean(), "auc": rows[:, 1].mean(),
            "colorfulness_ratio": rows[:, 2].mean() / rows[:, 3].mean()}


def score(row, gray):
    return sum((row[k] - gray[k]) / gain for k, gain in TARGETS.items())


def decodings():
    """(weight, temperature, alpha, gain) candidates of the grid."""
    for gain, temperature, weight in itertools.product(GAINS, TEMPERATURES, WEIGHTS):
        for alpha in ALPHAS if gain == 1.0 else GAIN_ALPHAS:
            if weight < 1.0 or (temperature, alpha) == (TEMPERATURES[0], ALPHAS[0]):
                yield weight, temperature, alpha, gain  # the regression head alone: once


def grid(model, photos, bias, sizes):
    """{(size, weight, temperature, alpha, gain): summary} over the photos."""
    rows = {}
    for rgb, size in itertools.product(photos, sizes):
        heads = PhotoHeads(model, rgb, size)
        for key in decodings():
            rows.setdefault((size, *key), []).append(heads.measure(heads.decode(*key, bias)))
    return {key: summarise(value) for key, value in rows.items()}


def anchors(table, gray):
    """(accurate, default, vivid) keys of the grid, as the module docstring defines them."""
    accurate = max(table, key=lambda k: score(table[k], gray))
    same_size = [k for k in table if k[0] == accurate[0]]
    vivid = [k for k in same_size if table[k]["colorfulness_ratio"] >= COLORFULNESS_RANGE[1]]
    vivid = (max(vivid, key=lambda k: score(table[k], gray)) if vivid else
             max(same_size, key=lambda k: table[k]["colorfulness_ratio"]))
    default = max(same_size, key=lambda k: (min(target_shares(table[k], gray)),
                                            score(table[k], gray)))
    return accurate, default, vivid


def target_shares(point, gray):
    """How far a point is towards each target, as a share capped at 1: the PSNR and AuC
    gains over gray, and colourfulness inside COLORFULNESS_RANGE."""
    low, high = COLORFULNESS_RANGE
    ratio = point["colorfulness_ratio"]
    shares = [min(1.0, (point[k] - gray[k]) / gain) for k, gain in TARGETS.items()]
    return shares + [min(1.0, ratio / low, high / max(ratio, 1e-9))]


def default_vividness(table, keys):
    """Where the default sits on the control: its colourfulness between the two ends."""
    accurate, default, vivid = (table[k]["colorfulness_ratio"] for k in keys)
    return float(np.clip(round((default - accurate) / max(vivid - accurate, 1e-9), 2), 0, 1))


def mix_rows(model, photos, bias, keys, default_v):
    """{vividness: [measure rows per photo]} along the control (koala.vividness.mix)."""
    rows = {v: [] for v in VIVIDNESS}
    for rgb in photos:
        heads = PhotoHeads(model, rgb, keys[0][0])
        accurate, default, vivid = (heads.decode(*key[1:], bias) for key in keys)
        for v in VIVIDNESS:
            rows[v].append(heads.measure(vividness.mix(accurate, default, vivid, v, default_v)))
    return rows


def vividness_curve(model, photos, bias, keys, default_v):
    """[{vividness, psnr, auc, colorfulness_ratio}] along the control, on the photos."""
    rows = mix_rows(model, photos, bias, keys, default_v)
    return [{"vividness": float(v), **summarise(r)} for v, r in rows.items()]


def imagenet_protocol(model, photos, bias, keys, default_v):
    """The anchors' ImageNet protocol (photos resized to 256x256, PSNR in RGB, dCF =
    |mean CF(pred) - mean CF(truth)|) per vividness, on validation photos."""
    square = [cv2.resize(rgb, (256, 256), interpolation=cv2.INTER_AREA) for rgb in photos]
    gray = summarise([gray_row(rgb) for rgb in square])
    rows = mix_rows(model, square, bias, keys, default_v)
    curve = []
    for v, r in rows.items():
        r = np.array(r)
        curve.append({"vividness": float(v), "psnr_gain": r[:, 0].mean() - gray["psnr"],
                      "cf": r[:, 2].mean(), "cf_truth": r[:, 3].mean(),
                      "dcf": abs(r[:, 2].mean() - r[:, 3].mean())})
    return {"photos": len(square), "gray_psnr": gray["psnr"], "curve": curve}


def plot(curve, gray, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    v = [p["vividness"] for p in curve]
    fig, left = plt.subplots(figsize=(6, 3.5))
    left.plot(v, [p["psnr"] - gray["psnr"] for p in curve], "o-", color="tab:blue")
    left.set_xlabel("vividness")
    left.set_ylabel("PSNR gain over gray (dB)", color="tab:blue")
    right = left.twinx()
    right.plot(v, [p["colorfulness_ratio"] for p in curve], "s-", color="tab:red")
    right.axhspan(*COLORFULNESS_RANGE, color="tab:red", alpha=0.1)
    right.set_ylabel("colourfulness / truth", color="tab:red")
    left.set_title("Default model on photos/val: accuracy vs vividness")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


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
    used = paths[::max(1, len(paths) // args.limit)][:args.limit]
    photos = [image_io.read_image(p) for p in used]
    start = time.time()
    bias = training_prior_bias(args.data)
    gray = summarise([gray_row(rgb) for rgb in photos])
    table = grid(model, photos, bias, [int(s) for s in args.sizes.split(",")])
    keys = anchors(table, gray)
    chosen = default_vividness(table, keys)
    curve = vividness_curve(model, photos, bias, keys, chosen)
    imagenette = [rgb for rgb, path in zip(photos, used) if "imagenette" in str(path)]
    protocol = imagenet_protocol(model, imagenette, bias, keys, chosen)
    names = ("size", "weight", "temperature", "alpha", "gain")
    report = {"source": source, "photos": len(photos), "seconds": time.time() - start,
              "gray": gray, "default_vividness": chosen, "curve": curve,
              "imagenet_256": protocol,
              **{role: dict(zip(names, key), **table[key])
                 for role, key in zip(ROLES, keys)},
              "candidates": sorted(({**dict(zip(names, k)), **v, "score": score(v, gray)}
                                    for k, v in table.items()), key=lambda r: -r["score"])}
    (workdir / "selection.json").write_text(json.dumps(report, indent=1, default=float))
    plot(curve, gray, workdir / "vividness.png")
    print(json.dumps({k: report[k] for k in ("photos", "gray", *ROLES, "default_vividness")},
                     default=float))
    if args.ship:
        ship(model, workdir, report, bias, continued_shipped_model(workdir))


def continued_shipped_model(workdir):
    """Whether the run started from the shipped bundle (its config.json says model.init
    "default"): then the shipped training log is its history and is kept."""
    config = workdir / "config.json"
    return config.is_file() and json.loads(config.read_text())["model"].get("init") == "default"


def training_log(workdir, previous):
    """The shipped model's training history: the earlier runs' lines (when this run
    continued them), then this run's, each tagged with its run number."""
    lines = []
    if previous is not None and previous.is_file():
        lines = [json.loads(line) for line in previous.read_text().splitlines() if line.strip()]
    run = max((line.get("run", 1) for line in lines), default=0) + 1
    if (workdir / "metrics.jsonl").is_file():
        for text in (workdir / "metrics.jsonl").read_text().splitlines():
            line = dict(json.loads(text), run=run) if text else None
            if line and (line.get("split") != "train" or line["step"] % LOG_EVERY == 0):
                lines.append(line)
    for line in lines:
        line.setdefault("run", 1)
    return lines


def run_summaries(lines, known=()):
    """Per run: its steps and its wall-clock hours, from the log's timestamps or, for runs
    logged before lines had them, from `known` (the shipped meta's training_runs)."""
    known_hours = {row["run"]: row.get("hours") for row in known}
    runs = {}
    for line in lines:
        runs.setdefault(line["run"], []).append(line)
    summaries = []
    for run, rows in sorted(runs.items()):
        times = [row["time"] for row in rows if "time" in row]
        hours = round((max(times) - min(times)) / 3600, 2) if times else known_hours.get(run)
        summaries.append({"run": run, "steps": max(row["step"] for row in rows), "hours": hours})
    return summaries


def ship(model, workdir, report, bias, append_log=False):
    """Writes the blended bundle, its selection and training log into koala/weights/default."""
    target = bundle_lib.DEFAULT_DIR
    previous = target / "training_log.jsonl"
    log = training_log(workdir, previous if append_log else None)
    meta_path = target / bundle_lib.META_FILE
    known = (json.loads(meta_path.read_text()).get("training_runs", [])
             if append_log and meta_path.is_file() else [])
    accurate, default, vivid = (
        effnet_unet.Blend(report[k]["weight"], report[k]["temperature"], report[k]["alpha"] * bias,
                          report[k]["gain"])
        for k in ROLES)
    blended = effnet_unet.inference_model(model, accurate, vivid, default)
    meta = {"model": "effnet_unet", "name": "default", "size": report["accurate"]["size"],
            "stride": STRIDE, "fit": "aspect", "output": "regression",
            "vividness": report["default_vividness"],
            "decoding": {k: {n: report[k][n] for n in ("weight", "temperature", "alpha", "gain")}
                         for k in ROLES},
            "selection": {k: report[k] for k in ("gray", *ROLES, "curve", "imagenet_256")},
            "training_runs": run_summaries(log, known)}
    bundle_lib.save(target, blended, meta)
    (target / "selection.json").write_text(json.dumps(report, indent=1, default=float))
    previous.write_text("".join(json.dumps(line) + "\n" for line in log))
    (REPO / "docs" / "vividness.png").write_bytes((workdir / "vividness.png").read_bytes())
    print(f"shipped to {target}")


if __name__ == "__main__":
    main()
