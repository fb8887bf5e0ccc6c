"""How the default model decodes, chosen on validation photos only (never the benchmark).

A trained effnet_unet has two heads (ab regression, ab bin logits). Decoding knobs: the
working size; w, the share of the regression head; T, the annealed-mean temperature; alpha,
the strength of the prior correction (bin logits + alpha * log of Zhang's rebalancing
weights, lambda 0.5, prior of the training data), which makes an unweighted classifier vivid
without retraining; g, a chroma gain on the result, which makes a muted (mean-of-colours)
decoding vivid uniformly.

Three blends of the grid anchor the vividness control (koala.vividness), all at one working
size: "accurate" (V = 0), the best progress towards the PSNR and AuC targets; "vivid"
(V = 1), the best-scoring blend at least 1.15x as colourful as the truth; "default", the blend
nearest to meeting all three targets at once (PSNR and AuC gains, colourfulness 0.9-1.15x the
truth's: the largest smallest share, see target_shares), placed on the control by its
colourfulness between the two ends.

Each photo goes through the path of `koala colorize` (koala.inference.colorizer: the same
working shape, full-resolution recombination), without hints: a hint model sees an all-zero
hint map, on which it is the automatic model. The heads run once per photo and size; the
196 decodings per size are NumPy.
"""

import itertools
import time

import cv2
import numpy as np

from koala import color, photo, vividness
from koala.evaluation import metrics
from koala.inference.colorizer import Colorizer

SIZES = (192, 224, 256)
WEIGHTS = (0.0, 0.25, 0.5, 1.0)  # share of the regression head
TEMPERATURES = (0.2, 0.38, 0.6)
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5)  # strength of the prior correction
GAINS = (1.0, 1.2, 1.35, 1.5, 1.65, 1.8, 2.0)  # chroma gain on the blend
GAIN_ALPHAS = ALPHAS[:2]  # gains > 1 with a strong prior correction only overshoot (val)
VIVIDNESS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))
COLORFULNESS_RANGE = (0.9, 1.15)
TARGETS = {"psnr": 1.4, "auc": 2.2}  # gains over gray asked of the default (issue 15)
ROLES = ("accurate", "default", "vivid")  # the anchors of koala.vividness, V = 0, V*, 1
KNOBS = ("size", "weight", "temperature", "alpha", "gain")  # a grid key, in order
PRIOR_LAMBDA = 0.5
IMAGENET_FOLDER = "imagenette"  # validation photos of ImageNet classes: the 256 protocol's


def prior_bias(prior):
    """log of Zhang's rebalancing weights (lambda 0.5) of an ab prior (koala.data.prior)."""
    return np.log(color.rebalancing_weights(prior, PRIOR_LAMBDA))


def _softmax(logits, temperature):
    z = logits / temperature
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class PhotoHeads:
    """One validation photo, its truth, and the model's two heads at one working size."""

    def __init__(self, colorizer, rgb):
        import tensorflow as tf  # noqa: PLC0415 (the heads run in Keras)

        self.rgb, self.photo = rgb, photo.split(rgb)
        self.truth_ab = color.rgb_to_lab_cv2(rgb)[..., 1:]
        small, self.box = colorizer.small_lightness(self.photo.lightness)
        self.shape = small.shape
        bundle = colorizer.bundle  # model_inputs: scaled L, and no hints for a hint model
        outputs = bundle.model(bundle.model_inputs(tf.constant(small[None, ..., None])),
                               training=False)
        self.ab_reg = color.unscale_ab(outputs["ab"][0].numpy())
        self.logits = outputs["ab_logits"][0].numpy()

    def decode(self, weight, temperature, alpha, gain, bias):
        """ab (Lab units) over the photo's content at working scale, for one decoding."""
        annealed = _softmax(self.logits + alpha * bias, temperature) @ color.ab_bins()
        height, width = self.shape
        annealed = cv2.resize(annealed, (width, height), interpolation=cv2.INTER_LINEAR)
        top, bottom, left, right = self.box
        return (gain * (weight * self.ab_reg + (1 - weight) * annealed))[top:bottom, left:right]

    def measure(self, ab):
        """(PSNR, AuC, colourfulness of the output, of the truth) for working-scale ab."""
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


def grid(colorizers, photos, bias):
    """{(size, weight, temperature, alpha, gain): summary} over the photos, at the working
    size of each of `colorizers` ({size: Colorizer})."""
    rows = {}
    for rgb, (size, colorizer) in itertools.product(photos, colorizers.items()):
        heads = PhotoHeads(colorizer, rgb)
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


def mix_rows(colorizer, photos, bias, keys, default_v):
    """{vividness: [measure rows per photo]} along the control (koala.vividness.mix)."""
    rows = {v: [] for v in VIVIDNESS}
    for rgb in photos:
        heads = PhotoHeads(colorizer, rgb)
        accurate, default, vivid = (heads.decode(*key[1:], bias) for key in keys)
        for v in VIVIDNESS:
            rows[v].append(heads.measure(vividness.mix(accurate, default, vivid, v, default_v)))
    return rows


def vividness_curve(colorizer, photos, bias, keys, default_v):
    """[{vividness, psnr, auc, colorfulness_ratio}] along the control, on the photos."""
    rows = mix_rows(colorizer, photos, bias, keys, default_v)
    return [{"vividness": float(v), **summarise(r)} for v, r in rows.items()]


def imagenet_protocol(colorizer, photos, bias, keys, default_v):
    """The anchors' ImageNet protocol (photos resized to 256x256, PSNR in RGB, dCF =
    |mean CF(pred) - mean CF(truth)|) per vividness, on validation photos (None without)."""
    if not photos:
        return None
    square = [cv2.resize(rgb, (256, 256), interpolation=cv2.INTER_AREA) for rgb in photos]
    gray = summarise([gray_row(rgb) for rgb in square])
    rows = mix_rows(colorizer, square, bias, keys, default_v)
    curve = []
    for v, r in rows.items():
        r = np.array(r)
        curve.append({"vividness": float(v), "psnr_gain": r[:, 0].mean() - gray["psnr"],
                      "cf": r[:, 2].mean(), "cf_truth": r[:, 3].mean(),
                      "dcf": abs(r[:, 2].mean() - r[:, 3].mean())})
    return {"photos": len(square), "gray_psnr": gray["psnr"], "curve": curve}


def imagenet_photos(paths, photos):
    """The photos (of `photos`, read from `paths`) that the ImageNet protocol measures: those
    of ImageNet classes, under an IMAGENET_FOLDER folder (photos/val's Imagenette)."""
    return [rgb for rgb, path in zip(photos, paths) if IMAGENET_FOLDER in str(path)]


def select(bundle, photos, prior, sizes=SIZES, protocol_photos=()):
    """The selection report of a trained two-head model on validation photos.

    bundle: a koala.bundle.keras_bundle.Bundle whose model takes any working size and
      outputs {"ab", "ab_logits"} (koala.shipping.release.load_trained); photos: RGB uint8
      arrays; prior: the training data's ab prior (koala.data.prior), for the prior
      correction; protocol_photos: those measured on the 256x256 ImageNet protocol too.
    Returns {"photos", "seconds", "gray", "default_vividness", "curve", "imagenet_256",
    "accurate", "default", "vivid" (each its KNOBS and summary), "candidates" (the grid,
    best score first)}.
    """
    start = time.time()
    bias = prior_bias(prior)
    colorizers = {int(size): Colorizer(bundle, int(size)) for size in sizes}
    gray = summarise([gray_row(rgb) for rgb in photos])
    table = grid(colorizers, photos, bias)
    keys = anchors(table, gray)
    chosen = default_vividness(table, keys)
    colorizer = colorizers[keys[0][0]]
    return {"photos": len(photos), "seconds": time.time() - start, "gray": gray,
            "default_vividness": chosen,
            "curve": vividness_curve(colorizer, photos, bias, keys, chosen),
            "imagenet_256": imagenet_protocol(colorizer, list(protocol_photos), bias, keys,
                                              chosen),
            **{role: dict(zip(KNOBS, key), **table[key]) for role, key in zip(ROLES, keys)},
            "candidates": sorted(({**dict(zip(KNOBS, k)), **v, "score": score(v, gray)}
                                  for k, v in table.items()), key=lambda r: -r["score"])}


def plot(curve, gray, path):
    """PSNR gain over gray and colourfulness against vividness, as docs/vividness.png."""
    import matplotlib  # noqa: PLC0415 (only the figure needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

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
    plt.close(fig)
