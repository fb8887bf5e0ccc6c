"""The papers' colorization metrics, computed on NumPy arrays one image at a time.

- ab MSE (seed 004's per-pixel chrominance loss), in Lab units squared.
- PSNR and SSIM on the RGB image (values in [0, 1]).
- Raw accuracy (seed 003): % of pixels whose predicted ab lies within an L2 threshold of the
  truth; Zhang et al.'s AuC (seed 002) integrates that % over thresholds 0..150, plain and
  class-rebalanced (each pixel weighted by 1 / prior of its true colour's bin).
- Colorfulness of Hasler and Suesstrunk (2003).
- Video flicker after motion compensation (consecutive frames, the previous one warped
  along the optical flow onto the current one).
Per-image values are streamed into `Accumulator` so that a whole benchmark never has to be
held in memory. Semantic interpretability needs a classifier and lives in koala/evaluate.py.
"""

import cv2
import numpy as np

AUC_MAX_THRESHOLD = 150.0  # Zhang et al.: thresholds swept from 0 to 150 ab units
CURVE_THRESHOLDS = np.arange(0, int(AUC_MAX_THRESHOLD) + 1, dtype=np.float64)


def ab_mse(ab_pred, ab_true):
    """Mean squared error over pixels and both chroma channels, in Lab units squared."""
    diff = np.asarray(ab_pred, np.float64) - np.asarray(ab_true, np.float64)
    return float(np.mean(diff ** 2))


def psnr(rgb_pred, rgb_true, max_value=1.0):
    """Peak signal-to-noise ratio (dB) of two RGB images with values in [0, max_value]."""
    mse = np.mean((np.asarray(rgb_pred, np.float64) - np.asarray(rgb_true, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(max_value ** 2 / mse))


def ssim(rgb_pred, rgb_true, max_value=1.0):
    """Structural similarity (tf.image.ssim, Gaussian 11x11 window) of two RGB images."""
    import tensorflow as tf  # only this metric needs TF

    pred = tf.convert_to_tensor(np.asarray(rgb_pred, np.float32))
    true = tf.convert_to_tensor(np.asarray(rgb_true, np.float32))
    return float(tf.image.ssim(pred, true, max_val=max_value).numpy())


def ab_distance(ab_pred, ab_true):
    """Per-pixel L2 distance in the ab plane."""
    diff = np.asarray(ab_pred, np.float32) - np.asarray(ab_true, np.float32)
    return np.sqrt(np.sum(diff * diff, axis=-1))


def raw_accuracy(ab_pred, ab_true, threshold, weights=None):
    """% of pixels (optionally weighted) whose ab error is within `threshold` (seed 003)."""
    within = ab_distance(ab_pred, ab_true) <= threshold
    return float(100.0 * np.average(within, weights=weights))


def accuracy_curve(ab_pred, ab_true, thresholds=CURVE_THRESHOLDS, weights=None):
    """Raw accuracy (%) at each threshold: the cumulative mass function that AuC integrates."""
    distance = ab_distance(ab_pred, ab_true).ravel()
    weights = np.ones_like(distance) if weights is None else np.asarray(weights).ravel()
    order = np.argsort(distance)
    cumulative = np.concatenate([[0.0], np.cumsum(weights[order], dtype=np.float64)])
    counts = cumulative[np.searchsorted(distance[order], thresholds, side="right")]
    return 100.0 * counts / cumulative[-1]


def auc(ab_pred, ab_true, weights=None, max_threshold=AUC_MAX_THRESHOLD):
    """Area under the accuracy-vs-threshold curve over [0, max_threshold], in %.

    Integrated exactly rather than by sampling thresholds: the integral of P(d <= t) over
    [0, T] equals E[T - min(d, T)], so AuC = 100 (1 - E[min(d, T)] / T). A perfect
    prediction gives 100; sampling at integer thresholds differs by < 1/T of a point.
    """
    clipped = np.minimum(ab_distance(ab_pred, ab_true), max_threshold)
    return float(100.0 * (1.0 - np.average(clipped, weights=weights) / max_threshold))


def pixel_rarity_weights(ab_true, prior):
    """Zhang's class-rebalanced AuC weights, one per pixel: 1 / prior of each true pixel's ab
    bin (not the loss's per-bin koala.color.rebalancing_weights, which mixes in uniform).

    Bins with no prior mass get the weight of the rarest observed bin, so one unseen colour
    cannot dominate the average.
    """
    from koala import color  # noqa: PLC0415 (it loads TensorFlow; video metrics need not)

    prior = np.asarray(prior, np.float64)
    floor = prior[prior > 0].min() if np.any(prior > 0) else 1.0
    return 1.0 / np.maximum(prior, floor)[color.bin_index(ab_true)]


def colorfulness(rgb):
    """Hasler and Suesstrunk (2003) colorfulness M of an RGB image (values 0..255).

    rg = R - G, yb = (R + G) / 2 - B; M = sqrt(s_rg^2 + s_yb^2) + 0.3 sqrt(m_rg^2 + m_yb^2)
    with s the standard deviations and m the means over the image.
    """
    rgb = np.asarray(rgb, np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    spread = np.sqrt(rg.std() ** 2 + yb.std() ** 2)
    centre = np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return float(spread + 0.3 * centre)


class Accumulator:
    """Streams per-image results and gives the dataset-level metrics of one method.

    Pixel metrics (MSE, accuracy, AuC) are pooled over all pixels, as in Zhang et al.;
    PSNR, SSIM and colorfulness are averaged over images.
    """

    def __init__(self, prior=None, accuracy_threshold=None):
        self.prior = prior
        self.threshold = accuracy_threshold
        self.pixels = 0
        self.sums = {"se": 0.0, "clipped": 0.0, "clipped_rebal": 0.0, "weight_rebal": 0.0,
                     "within": 0.0}
        self.curve = np.zeros_like(CURVE_THRESHOLDS)
        self.curve_rebal = np.zeros_like(CURVE_THRESHOLDS)
        self.per_image = {"psnr": [], "ssim": [], "colorfulness": []}

    def add(self, ab_pred, ab_true, rgb_pred, rgb_true, with_ssim=True):
        """ab in Lab units [H, W, 2]; rgb float in [0, 1] [H, W, 3]."""
        distance = ab_distance(ab_pred, ab_true)
        n = distance.size
        self.pixels += n
        self.sums["se"] += float(np.sum((np.asarray(ab_pred, np.float64) - ab_true) ** 2))
        self.sums["clipped"] += float(np.minimum(distance, AUC_MAX_THRESHOLD).sum())
        self.curve += accuracy_curve(ab_pred, ab_true) * n / 100.0
        if self.threshold is not None:
            self.sums["within"] += float(np.sum(distance <= self.threshold))
        if self.prior is not None:
            weights = pixel_rarity_weights(ab_true, self.prior)
            self.sums["weight_rebal"] += float(weights.sum())
            self.sums["clipped_rebal"] += float(
                (np.minimum(distance, AUC_MAX_THRESHOLD) * weights).sum())
            curve = accuracy_curve(ab_pred, ab_true, weights=weights)
            self.curve_rebal += curve * weights.sum() / 100.0
        self.per_image["psnr"].append(psnr(rgb_pred, rgb_true))
        if with_ssim:
            self.per_image["ssim"].append(ssim(rgb_pred, rgb_true))
        self.per_image["colorfulness"].append(colorfulness(np.asarray(rgb_pred) * 255.0))

    def result(self):
        """Dataset-level metrics as a JSON-ready dict (curves as lists of %)."""
        pixels = max(self.pixels, 1)
        out = {
            "ab_mse": self.sums["se"] / (2 * pixels),
            "auc": 100.0 * (1.0 - self.sums["clipped"] / pixels / AUC_MAX_THRESHOLD),
            "accuracy_curve": (100.0 * self.curve / pixels).tolist(),
        }
        if self.threshold is not None:
            out[f"raw_accuracy@{self.threshold:g}"] = 100.0 * self.sums["within"] / pixels
        if self.prior is not None and self.sums["weight_rebal"] > 0:
            weight = self.sums["weight_rebal"]
            out["auc_rebalanced"] = 100.0 * (
                1.0 - self.sums["clipped_rebal"] / weight / AUC_MAX_THRESHOLD)
            out["accuracy_curve_rebalanced"] = (100.0 * self.curve_rebal / weight).tolist()
        for name, values in self.per_image.items():
            finite = [v for v in values if np.isfinite(v)]
            if finite:
                out[name] = float(np.mean(finite))
        return out
