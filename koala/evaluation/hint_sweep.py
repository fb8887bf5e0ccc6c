"""How much a few colour hints help: Zhang et al. 2017's sweep, on any photo folder.

The protocol (their Fig. 5; resources/psnrs_siggraph.npy of richzhang/colorization-pytorch):
each photo resized to 256x256; N simulated hints, each a 6x6 square coloured with the
square's mean true ab, its corner drawn from a normal centred in the image with standard
deviation a quarter of the side (koala.hints.protocol_hints); PSNR of the 8-bit RGB output
against the photo. Each photo is colorized through koala.colorize with the hints as a user
would give them, so the sweep measures the whole path. Gray (ab = 0) is measured beside it.
"""

import cv2
import numpy as np

from koala import color
from koala import hints as hints_lib
from koala.evaluation import metrics
from koala.inference import colorizer as colorizer_lib

SIDE = 256
COUNTS = (0, 1, 2, 5, 10, 20, 50, 100)
# Zhang et al. 2017 on 1000 ImageNet val photos, mean PSNR (dB) by number of hints
ZHANG_2017_PSNR = {0: 24.43, 1: 25.37, 2: 26.20, 5: 27.39, 10: 28.42, 20: 29.34, 50: 30.42,
                   100: 31.13}


def _psnr(rgb, truth):
    return float(metrics.psnr(rgb / 255.0, truth / 255.0))


def sweep(colorizer, samples, counts=COUNTS, seed=0, vividness=None, progress=None):
    """{"photos", "gray": {...}, "by_hints": {N: {"psnr", "psnr_se", "auc",
    "colorfulness_ratio"}}} over `samples` (koala.evaluation.evaluate.Sample or RGB arrays);
    hints for photo i and count N come from a generator seeded by (seed, i, N)."""
    scores = {n: {"psnr": [], "auc": [], "colorfulness": []} for n in counts}
    gray_psnr, truth_colorfulness = [], []
    for index, sample in enumerate(samples):
        rgb = getattr(sample, "rgb", sample)
        truth = cv2.resize(rgb, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
        true_ab = color.rgb_to_lab_cv2(truth)[..., 1:]
        gray_psnr.append(_psnr(_gray(truth), truth))
        truth_colorfulness.append(metrics.colorfulness(truth))
        for count in counts:
            rng = np.random.default_rng([seed, index, count])
            hints = hints_lib.protocol_hints(truth, count, rng)
            # the model sees only the photo's L (its colour is not read), as in the protocol
            out = colorizer_lib.colorize(truth, colorizer, hints=hints, vividness=vividness)
            scores[count]["psnr"].append(_psnr(out, truth))
            scores[count]["auc"].append(float(metrics.auc(color.rgb_to_lab_cv2(out)[..., 1:],
                                                          true_ab)))
            scores[count]["colorfulness"].append(metrics.colorfulness(out))
        if progress:
            progress(1)
    mean_truth_cf = float(np.mean(truth_colorfulness))
    return {
        "photos": len(gray_psnr), "side": SIDE, "hint_size": hints_lib.PROTOCOL_SIZE,
        "gray": {"psnr": float(np.mean(gray_psnr))},
        "by_hints": {count: {
            "psnr": float(np.mean(s["psnr"])),
            "psnr_se": float(np.std(s["psnr"], ddof=1) / np.sqrt(len(s["psnr"])))
            if len(s["psnr"]) > 1 else 0.0,
            "auc": float(np.mean(s["auc"])),
            "colorfulness_ratio": float(np.mean(s["colorfulness"]) / mean_truth_cf)
            if mean_truth_cf else 0.0,
            "zhang_2017_psnr": ZHANG_2017_PSNR.get(count)} for count, s in scores.items()},
    }


def _gray(truth):
    """The gray baseline's output: the photo's own L with ab = 0, as 8-bit RGB."""
    lab = color.rgb_to_lab_cv2(truth)
    lab[..., 1:] = 0
    return np.rint(color.lab_to_rgb_cv2(lab) * 255.0)
