"""Evaluate models and baselines on colour photos with the papers' metrics; write a report.

Every method is judged on what a user gets: the model's ab at its working size, upsampled
and recombined with the photo's own full-resolution L (koala.inference.colorizer), then
measured in Lab against the true photo. Baselines run in the same pass: "gray" (ab = 0) and
"train mean ab" (the training set's mean colour everywhere).

Semantic interpretability (seeds 002, 003) runs the offline ImageNet classifier of
koala.evaluation.judge on colorized and true photos: top-1 agreement with the true photo's
class, and, where the folder names are ImageNet wnids, the top-1 accuracy and its drop.
"""

import dataclasses
import glob
import json
import pathlib
import re

import cv2
import numpy as np
from absl import logging

from koala import color, image_io, photo
from koala.evaluation import hint_sweep, judge, metrics
from koala.inference import colorizer as colorizer_lib

WNID = re.compile(r"^n\d{8}$")
STATS_SAMPLE = 400  # images read to estimate the training set's mean ab and prior
GRAY, MEAN_AB = "gray", "train mean ab"


@dataclasses.dataclass
class Sample:
    name: str
    rgb: np.ndarray  # uint8 [H, W, 3], the truth
    label: str | None = None  # ImageNet wnid when the folder says so


# --------------------------------------------------------------------------- inputs

def load_samples(source, limit=0, max_pixels=image_io.DEFAULT_MAX_PIXELS, skipped=None):
    """A folder of photos (recursive) or TFRecords (a directory of shards, a file or glob).

    Photos are read by koala.image_io (ICC to sRGB, EXIF, the pixel limit, alpha over
    white); one that cannot be read is logged, appended to `skipped` (a list) and passed over.
    """
    path = pathlib.Path(source)
    shards = sorted(path.glob("*.tfrecord")) if path.is_dir() else []
    if path.is_dir() and not shards:
        yield from _folder_samples(path, limit, max_pixels, skipped)
        return
    shards = shards or sorted(map(pathlib.Path, glob.glob(str(source))))  # absolute globs too
    if not shards:
        raise FileNotFoundError(f"{source}: no such photo folder, TFRecord file or glob")
    yield from _record_samples(shards, limit)


def _folder_samples(folder, limit, max_pixels, skipped):
    found, _ = image_io.find_inputs([folder], image_io.IMAGE_SUFFIXES)
    for count, (_, path) in enumerate(found):
        if limit and count >= limit:
            return
        try:
            image = image_io.read_image(path, max_pixels)
        except image_io.UnreadableImage as error:
            logging.warning("skipped %s", error)
            if skipped is not None:
                skipped.append(str(error))
            continue
        label = path.parent.name if WNID.match(path.parent.name) else None
        yield Sample(str(path.relative_to(folder)), image_io.to_rgb8(image), label)


def _record_samples(shards, limit):
    import tensorflow as tf  # noqa: PLC0415

    from koala.data import schema  # noqa: PLC0415

    count = 0
    records = tf.data.TFRecordDataset([str(s) for s in shards]).as_numpy_iterator()
    while not limit or count < limit:
        try:
            serialized = next(records)
        except StopIteration:
            return
        except tf.errors.DataLossError as error:  # e.g. a photo or text file given as records
            raise ValueError(f"{shards[0] if len(shards) == 1 else shards[0].parent}: not "
                             f"TFRecords ({error.message})") from None
        example = schema.parse_numpy(serialized)
        rgb = np.rint(color.lab_to_rgb_cv2(example["lab"]) * 255).astype(np.uint8)
        yield Sample(example["id"], rgb)
        count += 1


def train_statistics(source, limit=STATS_SAMPLE, max_pixels=image_io.DEFAULT_MAX_PIXELS):
    """(mean ab [2], prior over color.ab_bins()) of a training set (folder or records)."""
    counts = np.zeros(len(color.ab_bins()), np.float64)
    total, pixels = np.zeros(2), 0
    for sample in load_samples(source, limit, max_pixels):
        ab = color.rgb_to_lab_cv2(_shrink(sample.rgb, 128))[..., 1:].reshape(-1, 2)
        counts += color.histogram_counts(ab)
        total += ab.sum(0)
        pixels += len(ab)
    if not pixels:
        raise ValueError(f"{source}: no photos to estimate training statistics from")
    return total / pixels, color.smoothed_prior(counts)


def _shrink(rgb, side):
    scale = side / max(rgb.shape[:2])
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------- the run

class Evaluation:
    """Accumulates every method's metrics, classifier votes and figure material."""

    def __init__(self, colorizers, prior, mean_ab, threshold=10.0, grid_rows=6,
                 semantic=True, vividness=None):
        self.colorizers = colorizers  # {name: Colorizer}
        self.vividness = dict(vividness or {})  # {name: vividness}, absent: the model's default
        self.mean_ab = np.asarray(mean_ab, np.float32)
        self.methods = [GRAY, MEAN_AB, *colorizers]
        self.accumulators = {m: metrics.Accumulator(prior, threshold) for m in self.methods}
        self.truth_colorfulness = []
        self.histograms = {m: np.zeros((128, 128), np.int64) for m in self.methods + ["truth"]}
        self.grid, self.grid_rows = [], grid_rows
        self.classify, self.semantic_skip = judge.classifier_or_reason() if semantic else (
            None, "disabled (--nosemantic)")
        self.votes = {m: [] for m in self.methods + ["truth"]}
        self.labels = []
        self.count = 0

    def _ab_for(self, method, lightness):
        if method == GRAY:
            return np.zeros((1, 1, 2), np.float32)
        if method == MEAN_AB:
            return np.broadcast_to(self.mean_ab, (1, 1, 2)).copy()
        colorizer = self.colorizers[method]
        return colorizer.ab_at_working_scale([lightness], self.vividness.get(method))[0]

    def add(self, sample):
        truth = sample.rgb
        truth_lab = color.rgb_to_lab_cv2(truth)
        lightness = photo.lightness(truth)
        outputs = {}
        for method in self.methods:
            rgb = photo.recombine(lightness, self._ab_for(method, lightness))
            ab = color.rgb_to_lab_cv2(rgb)[..., 1:]
            self.accumulators[method].add(ab, truth_lab[..., 1:], rgb / 255.0, truth / 255.0)
            self.histograms[method] += color.fine_histogram_counts(ab[::2, ::2])
            outputs[method] = rgb
        self.histograms["truth"] += color.fine_histogram_counts(truth_lab[::2, ::2, 1:])
        self.truth_colorfulness.append(metrics.colorfulness(truth))
        if self.classify is not None:
            names = self.methods + ["truth"]
            for name, vote in zip(names, self.classify([outputs.get(n, truth) for n in names])):
                self.votes[name].append(int(vote))
            self.labels.append(sample.label)
        if len(self.grid) < self.grid_rows:
            self.grid.append((sample.name, [_shrink(outputs[GRAY], 256)]
                              + [_shrink(outputs[m], 256) for m in self.colorizers]
                              + [_shrink(truth, 256)]))
        self.count += 1

    def results(self):
        truth_colorfulness = float(np.mean(self.truth_colorfulness)) if self.count else 0.0
        out = {"images": self.count, "truth_colorfulness": truth_colorfulness, "methods": {},
               "classifier": judge.CLASSIFIER}
        for method in self.methods:
            result = self.accumulators[method].result()
            if truth_colorfulness:
                result["colorfulness_ratio"] = result["colorfulness"] / truth_colorfulness
            result.update(self._semantic(method))
            out["methods"][method] = result
        if self.semantic_skip:
            out["semantic_skipped"] = self.semantic_skip
        elif any(self.labels):
            out["truth_top1"] = self._accuracy("truth")
        return out

    def _semantic(self, method):
        if self.classify is None or not self.votes[method]:
            return {}
        agree = np.mean(np.equal(self.votes[method], self.votes["truth"])) * 100.0
        result = {"top1_agreement": float(agree)}
        if any(self.labels):
            result["top1_accuracy"] = self._accuracy(method)
            result["top1_accuracy_drop"] = self._accuracy("truth") - result["top1_accuracy"]
        return result

    def _accuracy(self, name):
        index = {wnid: i for i, wnid in enumerate(judge.imagenet_wnids())}
        pairs = [(v, index[l]) for v, l in zip(self.votes[name], self.labels) if l in index]
        return float(np.mean([v == t for v, t in pairs]) * 100.0) if pairs else float("nan")


def reference_study(colorizer, source, threshold=10.0, limit=0):
    """Does a similar reference help (seed 003)? Each photo is colorized alone and guided by
    the next photo of its own folder (same class or scene: similar content, not the same
    photo); returns raw accuracy and AuC of both over the same pixels."""
    by_folder = {}
    for sample in load_samples(source, limit):
        by_folder.setdefault(str(pathlib.Path(sample.name).parent), []).append(sample.rgb)
    scores = {"alone": metrics.Accumulator(accuracy_threshold=threshold),
              "guided": metrics.Accumulator(accuracy_threshold=threshold)}
    pairs = 0
    for photos in by_folder.values():
        for index, truth in enumerate(photos if len(photos) > 1 else []):
            reference = photos[(index + 1) % len(photos)]
            true_ab = color.rgb_to_lab_cv2(truth)[..., 1:]
            for name, guide in (("alone", None), ("guided", reference)):
                rgb = colorizer_lib.colorize(truth, colorizer, reference=guide)
                scores[name].add(color.rgb_to_lab_cv2(rgb)[..., 1:], true_ab, rgb / 255.0,
                                 truth / 255.0, with_ssim=False)
            pairs += 1
    keep = ("auc", f"raw_accuracy@{threshold:g}", "ab_mse", "psnr")
    return {"pairs": pairs, **{name: {k: v for k, v in accumulator.result().items() if k in keep}
                               for name, accumulator in scores.items()}}


def run(model_names, source, output_dir, size=None, train_stats=None, limit=0,
        threshold=10.0, semantic=True, progress=None, reference_source=None,
        max_pixels=image_io.DEFAULT_MAX_PIXELS, vividness=(None,), hint_counts=()):
    """Evaluates models (names or paths) on `source`; writes metrics.json, report.md, figures.

    Each model is evaluated at each of the `vividness` values (None: its default), labelled
    "NAME@V". Photos that cannot be read (or exceed `max_pixels`) are listed under "skipped".
    `hint_counts`: also run Zhang et al. 2017's hint sweep (koala.evaluation.hint_sweep) for
    each model that takes hints, at these numbers of simulated hints."""
    from koala.evaluation import figures  # noqa: PLC0415 (matplotlib only when writing)

    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    colorizers, chosen = {}, {}
    for name in model_names:
        label = _label(name)
        label = label if label not in colorizers else str(name)
        colorizer = colorizer_lib.Colorizer(name, size)
        for value in vividness:
            key = label if value is None else f"{label}@{value:g}"
            colorizers[key] = colorizer
            if value is not None:
                chosen[key] = value
    stats_note = f"from {train_stats}"
    if train_stats:
        mean_ab, prior = train_statistics(train_stats, max_pixels=max_pixels)
    else:  # no training set given: the evaluated photos stand in (an optimistic baseline)
        mean_ab, prior = train_statistics(source, limit or STATS_SAMPLE, max_pixels)
        stats_note = "from the evaluated photos themselves (no --train_stats given)"
    evaluation = Evaluation(colorizers, prior, mean_ab, threshold, semantic=semantic,
                            vividness=chosen)
    skipped = []
    for sample in load_samples(source, limit, max_pixels, skipped):
        evaluation.add(sample)
        if progress:
            progress(1)
    results = evaluation.results()
    results.update({"input": str(source), "threshold": threshold,
                    "models": {label: str(c.bundle.path) for label, c in colorizers.items()},
                    "train_mean_ab": [float(v) for v in mean_ab], "train_stats": stats_note,
                    "skipped": skipped})
    if hint_counts:
        results["hint_sweep"] = {
            label: hint_sweep.sweep(colorizer, load_samples(source, limit, max_pixels),
                                    tuple(hint_counts), vividness=chosen.get(label))
            for label, colorizer in colorizers.items() if colorizer.takes_hints}
        if not results["hint_sweep"]:
            raise ValueError("--hints: none of the models takes colour hints")
    if reference_source:
        first = next(iter(colorizers.values()))
        results["reference_study"] = {"input": str(reference_source), **reference_study(
            first, reference_source, threshold, limit)}
    (output_dir / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    written = figures.write_all(evaluation, results, output_dir)
    (output_dir / "report.md").write_text(figures.markdown(results, written))
    return results


def _label(name):
    path = pathlib.Path(str(name))
    return str(name) if str(name) == "default" else path.name or str(name)
