"""Per-image metrics of every method of a comparison, on the same val images.

The verdicts are paired (koala.reproduce.verdict), so every method must be measured on the
very same images: `Comparison` holds them once and measures each method against them.
"""

import numpy as np

from koala import color
from koala.evaluation import metrics
from koala.reproduce import figures
from koala.reproduce.runs import decode, in_chunks, model_outputs, val_images

ACCURACY_THRESHOLD = 10.0  # ab units, as koala evaluate's raw accuracy
GRID_ROWS = 4


def to_uint8(rgb):
    return np.clip(np.rint(np.asarray(rgb) * 255.0), 0, 255).astype(np.uint8)


def measure(gray, truth, prediction, color_space, prior=None, classify=None, truth_votes=None):
    """Per-image metrics {name: [N]} of `prediction` against `truth` (model units)."""
    true_rgb = color.target_to_rgb(gray, truth, color_space).numpy()
    pred_rgb = color.target_to_rgb(gray, prediction, color_space).numpy()
    scale = color.UV_SCALE if color_space == "yuv" else 128.0  # model units -> native
    chroma_error = np.sum(np.square((prediction - truth) * scale), axis=-1)
    result = {
        "mse": np.mean(np.square(prediction - truth), axis=(1, 2, 3)),
        "chroma_se": chroma_error.mean(axis=(1, 2)),
        "psnr": np.array([metrics.psnr(p, t) for p, t in zip(pred_rgb, true_rgb)]),
        "colorfulness": np.array([metrics.colorfulness(p * 255.0) for p in pred_rgb]),
    }
    if color_space == "lab":
        ab_pred, ab_true = color.unscale_ab(prediction), color.unscale_ab(truth)
        result["auc"] = np.array([metrics.auc(p, t) for p, t in zip(ab_pred, ab_true)])
        result["raw_accuracy"] = np.array([metrics.raw_accuracy(p, t, ACCURACY_THRESHOLD)
                                           for p, t in zip(ab_pred, ab_true)])
        if prior is not None:
            result["auc_rebalanced"] = np.array([
                metrics.auc(p, t, weights=metrics.pixel_rarity_weights(t, prior))
                for p, t in zip(ab_pred, ab_true)])
    if classify is not None:
        result["top1_agreement"] = 100.0 * (in_chunks(classify, to_uint8(pred_rgb))
                                            == truth_votes)
    return result


class Comparison:
    """The val images of one claim, and every method measured on them, once per training
    seed: methods[method][metric] is a list of per-image arrays, one per seed."""

    def __init__(self, config, limit, prior=None, classify=None):
        self.features, self.truth = val_images(config, limit)
        self.gray = self.features["L"]
        self.size = int(config.data.size)
        self.color_space = config.data.color_space
        self.prior = prior
        self.classify = classify
        self.truth_votes = None
        if classify is not None:
            self.truth_votes = in_chunks(classify, self.rgb(self.truth))
        self.methods = {}
        self.images = {"gray": list(self.rgb(np.zeros_like(self.truth)))}

    def rgb(self, target):
        return to_uint8(color.target_to_rgb(self.gray, target, self.color_space).numpy())

    def add(self, method, prediction):
        """Measures one more seed of `method` (the grid shows its first seed)."""
        measured = measure(self.gray, self.truth, prediction, self.color_space, self.prior,
                           self.classify, self.truth_votes)
        rows = self.methods.setdefault(method, {})
        for metric, values in measured.items():
            rows.setdefault(metric, []).append(values)
        if method not in self.images:
            self.images[method] = list(self.rgb(prediction)[:GRID_ROWS])

    def measured(self):
        """{method: {metric: array [seeds, images]}}."""
        return {method: {metric: np.stack(rows) for metric, rows in metrics.items()}
                for method, metrics in self.methods.items()}

    def with_truth(self):
        """The measurements plus the true colours as a last row (colorfulness to aim for)."""
        self.add("truth", self.truth)
        del self.methods["truth"]["psnr"]  # infinite against itself
        return self.measured()

    def add_model(self, method, model, kind, temperature=None):
        """Measures a trained model (one seed); returns its raw outputs (other decodings)."""
        outputs = model_outputs(model, self.features)
        self.add(method, decode(outputs, kind, self.size, temperature))
        return outputs

    def grid(self, context, name, methods):
        """gray | methods | truth for the first GRID_ROWS images -> the figure's link."""
        path, link = context.figure(name)
        columns = {"gray": self.images["gray"], **{m: self.images[m] for m in methods},
                   "truth": list(self.rgb(self.truth)[:GRID_ROWS])}
        figures.save_image_grid(columns, path, GRID_ROWS)
        return link
