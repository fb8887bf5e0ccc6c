"""`koala report`: small, seeded, CPU-sized versions of each paper's central comparison.

Each section trains the models it compares with koala.train (same records, seed, steps and
batch for both sides of a comparison, so the only difference is the one the paper studies),
measures them on the same held-out images and sets every claim beside the measurement
(koala.report_format decides agrees / disagrees / inconclusive from the paired per-image
differences). A `Budget` scales everything at once: "tiny" proves the pipeline in about a
minute (CI); "cpu" is the committed report, about 25 minutes on a busy 2-core machine. At
either budget the models are far from converged: the report measures the direction of each
effect early in training, not the papers' final numbers.

Records come from seeded random samples of ../shared/data (a list file per set, so that the
sample mixes every sub-folder; `limit` alone would take the alphabetically first ones) and
are built once per budget under the workdir, then reused.
"""

import dataclasses
import pathlib
import random
import shutil
import time

import numpy as np
import tensorflow as tf
from absl import logging

from koala import color, photo
from koala import image_io
from koala.image_io import IMAGE_SUFFIXES
from koala import report_format as fmt
from koala.evaluation import judge, metrics
from koala.models import outputs as model_outputs_lib
from koala.training import builders, loop, records as training_records
from koala.training import config as training_config

SEED = 0
ACCURACY_THRESHOLD = 10.0  # ab units, as koala evaluate's raw accuracy
TEMPERATURES = (0.01, 0.2, 0.38, 0.6, 1.0)
RARITY_LAMBDAS = (0.25, 0.5, 0.75)
GRID_ROWS = 4
CHUNK = 16  # images per forward pass when measuring


@dataclasses.dataclass(frozen=True)
class Budget:
    """How big every run of the report is."""

    name: str
    steps: int  # optimizer steps of every photo model's training run
    cifar_steps: int  # the 32 px CIFAR U-Nets: ~8x cheaper a step, so they get more
    batch: int
    photo_size: int  # working size of the photo records (divisible by 32)
    photos: int  # photos sampled from photos/train (10% become the val split)
    cifar_images: int  # CIFAR-10 images sampled (10% val)
    eval_images: int  # at most this many val images per comparison
    unet_width: int  # seed 004 U-Net base width
    zhang_width: float  # zhang_eccv16 width multiplier
    reference_folders: int  # photos/val class folders used by seed 003
    reference_per_folder: int


BUDGETS = {
    "tiny": Budget("tiny", steps=2, cifar_steps=2, batch=4, photo_size=32, photos=30,
                   cifar_images=40, eval_images=6, unet_width=8, zhang_width=0.125,
                   reference_folders=2, reference_per_folder=2),
    "cpu": Budget("cpu", steps=600, cifar_steps=2000, batch=16, photo_size=64, photos=2000,
                  cifar_images=5000, eval_images=200, unet_width=16, zhang_width=0.25,
                  reference_folders=16, reference_per_folder=3),
}


@dataclasses.dataclass
class Context:
    """Where things are and what they cost: shared by every section."""

    budget: Budget
    data: pathlib.Path  # ../shared/data
    workdir: pathlib.Path  # records/ and runs/ of this budget
    figures: pathlib.Path  # PNGs beside REPORT.md
    figures_link: str  # how REPORT.md refers to that folder
    reuse_runs: bool = False

    def figure(self, name):
        return self.figures / name, f"{self.figures_link}/{name}"


# --------------------------------------------------------------------------- records

def sample_list(folder, count, path, seed=SEED):
    """A seeded random sample of `count` images under `folder` -> a list file at `path`."""
    files = sorted(str(p.resolve()) for p in pathlib.Path(folder).rglob("*")
                   if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{folder}: no images")
    chosen = random.Random(seed).sample(files, min(count, len(files)))
    path.write_text("\n".join(chosen) + "\n")
    return path


def ensure_records(context, name, folder, count, size, embedding=""):
    """Builds (once) records of a sample of `folder` at `size`, centre-cropped, 10% val."""
    from koala.data import sources, writer  # noqa: PLC0415

    name = f"{name}_{count}x{size}"  # a budget that samples differently gets its own records
    directory = context.workdir / "records" / name
    if (directory / "manifest.json").is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    listing = sample_list(folder, count, context.workdir / "records" / f"{name}.txt")
    settings = writer.Settings(source=str(listing), size=size, resize="crop", val_fraction=0.1,
                               seed=SEED, embedding=embedding)
    manifest = writer.build(sources.open_source(str(listing)), directory, settings)
    if not manifest["counts"]["train"]["examples"] or not manifest["counts"]["val"]["examples"]:
        shutil.rmtree(directory)
        raise ValueError(f"{folder}: no usable images for the {name} records "
                         f"({manifest['skip_reasons']})")
    return directory


# --------------------------------------------------------------------------- training

def train_run(context, run, experiment, records, size, with_embedding=False,
              changes=None, learning_rate=1e-3, steps=None):
    """Trains `experiment` (its cpu/tiny variant) on `records`; returns (model, config, kind).

    Every run of the report shares seed, steps, batch and learning rate (papers' rates such
    as Zhang's 3e-5 are for 10^5 steps; a few hundred steps need 1e-3 to move at all).
    `changes` maps dotted config keys to values (the one thing a comparison varies).
    """
    import keras  # noqa: PLC0415

    from koala import bundle  # noqa: PLC0415

    budget = context.budget
    steps = steps or budget.steps
    config = training_config.load_config(f"{experiment}:{'tiny' if budget.name == 'tiny' else 'cpu'}")
    config.data.update(records=str(records), source="", size=size,
                       with_embedding=with_embedding)
    config.train.update(steps=steps, batch_size=budget.batch, seed=SEED,
                        steps_per_loop=max(1, min(50, steps)))
    config.eval.update(every_steps=steps, max_batches=1, images=2)
    config.checkpoint.every_steps = steps
    config.precision = "float32"
    config.optimizer.learning_rate = learning_rate
    training_config.override(config, changes or {})
    workdir = context.workdir / "runs" / run
    finished = (workdir / "bundle" / "koala.json").is_file()
    if not (context.reuse_runs and finished):
        shutil.rmtree(workdir, ignore_errors=True)  # fresh: the seed decides the result
        keras.backend.clear_session()
        started = time.perf_counter()
        loop.train(config, workdir, strategy=tf.distribute.get_strategy())
        logging.info("report: trained %s in %.0f s", run, time.perf_counter() - started)
    return bundle.load(workdir).model, config, builders.output_kind(config)


# --------------------------------------------------------------------------- measuring

def val_images(config, limit):
    """(features {name: array}, target array) of up to `limit` val images of `config`."""
    features, targets = {}, []
    for batch_features, batch_target in training_records.make_dataset(config, "val", 32):
        for name, value in batch_features.items():
            features.setdefault(name, []).append(value.numpy())
        targets.append(batch_target.numpy())
        if sum(len(t) for t in targets) >= limit:
            break
    if not targets:
        raise ValueError(f"{config.data.records}: the val split is empty")
    return ({k: np.concatenate(v)[:limit] for k, v in features.items()},
            np.concatenate(targets)[:limit])


def in_chunks(function, *arrays, size=CHUNK):
    """function(*arrays) evaluated CHUNK images at a time and concatenated: a whole val set
    in one call holds every layer's activations for all images (the 224 px classifier on
    200 images needs > 20 GB)."""
    parts = [np.asarray(function(*(a[i:i + size] for a in arrays)))
             for i in range(0, len(arrays[0]), size)]
    return np.concatenate(parts)


def model_outputs(model, features):
    """The model's raw outputs on the inputs it declares (records may hold more)."""
    names = sorted(tensor.name.split(":")[0] for tensor in model.inputs)
    return in_chunks(lambda *inputs: model(dict(zip(names, inputs)), training=False),
                     *(features[name] for name in names))


def decode(outputs, kind, size, temperature=None):
    """Raw outputs -> target in model units; `temperature` overrides the annealed mean's."""
    return np.asarray(model_outputs_lib.to_target(outputs, kind, size, temperature))


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
                metrics.auc(p, t, weights=metrics.rebalancing_weights(t, prior))
                for p, t in zip(ab_pred, ab_true)])
    if classify is not None:
        result["top1_agreement"] = 100.0 * (in_chunks(classify, to_uint8(pred_rgb))
                                            == truth_votes)
    return result


class Comparison:
    """The val images of one section, and every method measured on them."""

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
        self.methods[method] = measure(self.gray, self.truth, prediction, self.color_space,
                                       self.prior, self.classify, self.truth_votes)
        self.images[method] = list(self.rgb(prediction)[:GRID_ROWS])

    def with_truth(self):
        """The methods plus the true colours as a last row (colorfulness to aim for)."""
        self.add("truth", self.truth)
        del self.methods["truth"]["psnr"]  # infinite against itself
        return self.methods

    def add_model(self, method, model, kind, temperature=None):
        """Measures a trained model; returns its raw outputs (for other decodings)."""
        outputs = model_outputs(model, self.features)
        self.add(method, decode(outputs, kind, self.size, temperature))
        return outputs

    def grid(self, context, name, methods):
        path, link = context.figure(name)
        columns = {"gray": self.images["gray"], **{m: self.images[m] for m in methods},
                   "truth": list(self.rgb(self.truth)[:GRID_ROWS])}
        fmt.image_grid(columns, path, GRID_ROWS)
        return link


def _setup(context, records, lines, steps=None):
    budget = context.budget
    head = [f"- Records: `{records.name}` ({records.relative_to(context.workdir)} under the "
            f"report workdir), seeded sample, centre-cropped.",
            f"- Training: {steps or budget.steps} steps, batch {budget.batch}, Adam 1e-3, "
            f"seed {SEED}, float32, one CPU process; every compared model identical except for the "
            f"studied change."]
    return "\n".join(head + [f"- {line}" for line in lines])


ONE_SEED = ("One training seed per model: the ± is the paired standard error over images, "
            "not over training runs.")


# --------------------------------------------------------------------------- sections

def section_004(context):
    """Seed 004: U-Net regression vs 20-bin classification on CIFAR-10 in YUV."""
    budget = context.budget
    records = ensure_records(context, "cifar10", context.data / "cifar10", budget.cifar_images,
                             32)
    runs = {}
    for method, experiment in (("regression", "cifar10_unet_regression"),
                               ("classification", "cifar10_unet_classification")):
        runs[method] = train_run(context, f"004_{method}", experiment, records, 32,
                                 changes={"model.kwargs.base_width": budget.unet_width},
                                 steps=budget.cifar_steps)
    comparison = Comparison(runs["regression"][1], budget.eval_images)
    comparison.add("gray (U = V = 0)", np.zeros_like(comparison.truth))
    for method, (model, _, kind) in runs.items():
        comparison.add_model(method, model, kind)
    grid = comparison.grid(context, "004_cifar_grid.png", list(runs))
    claims = [
        fmt.Claim("Regression (MSE on UV) gives the lower per-pixel chrominance loss",
                  "chroma_se", "regression", "<", "classification"),
        fmt.Claim("Classification (20 bins per channel) gives more colourful results",
                  "colorfulness", "classification", ">", "regression"),
    ]
    setup = _setup(context, records, [
        f"Models: `unet` (depth 3, base width {budget.unet_width}), regression head (tanh, "
        "MSE on scaled UV) vs classification head (20 equal bins per channel, cross-entropy, "
        "decoded by the softmax-weighted mean of the bin centres).",
        "Colour space YUV (BT.601), 32 x 32; chroma SE = mean over pixels of dU^2 + dV^2, "
        "U and V in their BT.601 units (the paper's eq. 2).",
        "The proposal states no result; its claims are the trade-off it sets out to measure "
        "(ColorUNet, Zhang et al.): regression is accurate but dull, classification vivid."],
        steps=budget.cifar_steps)
    return fmt.Section("004", "U-Net regression vs classification (CIFAR-10, YUV)", setup,
                       comparison.with_truth(), claims, [("CIFAR-10 val: gray | regression | "
                                                     "classification | truth", grid)],
                       notes=ONE_SEED)


def photo_records(context):
    """The photo records of every Lab section, with the Lite0 embedding seed 001 fuses."""
    budget = context.budget
    return ensure_records(context, "photos", context.data / "photos" / "train", budget.photos,
                          budget.photo_size, embedding="efficientnet_lite0")


def section_000(context):
    """Seed 000: MSE vs rarity-weighted MSE (several lambda), effnet_head on Lite0."""
    budget = context.budget
    records = photo_records(context)
    prior = training_records.ab_prior(str(records))
    runs = {"MSE": train_run(context, "000_mse", "effnet_head_lite", records,
                             budget.photo_size, changes={"loss.name": "mse_ab",
                                                         "model.kwargs.weights": "imagenet"})}
    for lam in RARITY_LAMBDAS:
        runs[f"rarity λ={lam:g}"] = train_run(
            context, f"000_rarity_{lam:g}", "effnet_head_lite", records, budget.photo_size,
            changes={"loss.name": "rarity_weighted_mse", "loss.lam": lam,
                     "model.kwargs.weights": "imagenet"})
    comparison = Comparison(runs["MSE"][1], budget.eval_images, prior=prior)
    comparison.add("gray", np.zeros_like(comparison.truth))
    for method, (model, _, kind) in runs.items():
        comparison.add_model(method, model, kind)
    rarity = [m for m in runs if m != "MSE"]
    claims = [fmt.Claim(f"Rarity weighting ({m}) gives more saturated colours than MSE",
                        "colorfulness", m, ">", "MSE") for m in rarity]
    claims.append(fmt.Claim("Rarity weighting brings no quantitative gain (tested: PSNR of "
                            "MSE above λ=0.5's)", "psnr", "MSE", ">", "rarity λ=0.5"))
    section = fmt.Section("000", "MSE vs rarity-weighted MSE (EfficientNet head)", _setup(
        context, records, [
            f"Model: `effnet_head` on the frozen offline EfficientNet-Lite0 (ImageNet weights), "
            f"{budget.photo_size} px; loss MSE vs rarity-weighted MSE, v(a,b) ∝ 1/((1-λ) p~ + "
            f"λ/Q) with E[v] = 1, p~ the smoothed ab prior of the training records.",
            "AuC: Zhang's area under the ab-accuracy curve over thresholds 0-150; rebalanced "
            "AuC weights pixels by 1/prior."]),
        comparison.with_truth(), claims, notes=ONE_SEED + " The paper reports no numbers; its "
        "claims are qualitative (more saturated; 'no considerable progress on quantitative "
        "metrics').")
    path, link = context.figure("000_lambda_sweep.png")
    fmt.sweep_plot(section, list(runs), [0.0, *RARITY_LAMBDAS], "λ (0 = plain MSE)",
                   ["colorfulness", "auc", "psnr"], path)
    section.figures = [("colorfulness, AuC and PSNR against λ", link),
                       ("photos val: gray | MSE | rarity λ | truth",
                        comparison.grid(context, "000_photos_grid.png", list(runs)))]
    return section


def section_002(context):
    """Seed 002 (Zhang et al.): class rebalancing on/off; annealed-mean temperature sweep."""
    budget = context.budget
    records = photo_records(context)
    prior = training_records.ab_prior(str(records))
    changes = {"model.kwargs.width": budget.zhang_width, "optimizer.weight_decay": 0.0}
    runs = {"rebalanced (λ=0.5)": train_run(context, "002_rebalanced", "zhang_eccv16", records,
                                            budget.photo_size, changes={**changes,
                                                                        "loss.lam": 0.5}),
            "no rebalancing": train_run(context, "002_plain", "zhang_eccv16", records,
                                        budget.photo_size, changes={**changes, "loss.lam": 1.0})}
    comparison = Comparison(runs["no rebalancing"][1], budget.eval_images, prior=prior)
    comparison.add("gray", np.zeros_like(comparison.truth))
    outputs = {method: comparison.add_model(method, model, kind, temperature=0.38)
               for method, (model, _, kind) in runs.items()}
    sweep = [f"rebalanced, T={t:g}" for t in TEMPERATURES]
    for method, temperature in zip(sweep, TEMPERATURES):
        comparison.add(method, decode(outputs["rebalanced (λ=0.5)"], "classification",
                                      comparison.size, temperature))
    claims = [
        fmt.Claim("Rebalancing lowers plain AuC (Zhang: 91.6 → 89.5)", "auc",
                  "no rebalancing", ">", "rebalanced (λ=0.5)"),
        fmt.Claim("Rebalancing raises rebalanced AuC (Zhang: 65.1 → 67.3)", "auc_rebalanced",
                  "rebalanced (λ=0.5)", ">", "no rebalancing"),
        fmt.Claim("Rebalancing gives more vivid colours", "colorfulness",
                  "rebalanced (λ=0.5)", ">", "no rebalancing"),
        fmt.Claim("Annealed mean T=0.38 is more vivid than the mean (T=1)", "colorfulness",
                  sweep[2], ">", sweep[-1]),
        fmt.Claim("Annealed mean T=0.38 is more accurate than the mode (T→0)", "auc",
                  sweep[2], ">", sweep[0]),
    ]
    section = fmt.Section("002", "Zhang et al.: class rebalancing and the annealed mean",
                          _setup(context, records, [
                              f"Model: `zhang_eccv16` at width x{budget.zhang_width:g}, "
                              f"{budget.photo_size} px, logits over Q = "
                              f"{len(color.ab_bins())} ab bins at 1/4 resolution; loss: "
                              "soft-encoded cross-entropy with class rebalancing λ = 0.5 vs "
                              "none (λ = 1: uniform weights); no weight decay.",
                              "Both decoded by the annealed mean at T = 0.38; the sweep "
                              "re-decodes the rebalanced model's logits at each T."]),
                          comparison.with_truth(), claims, notes=ONE_SEED)
    path, link = context.figure("002_temperature_sweep.png")
    fmt.sweep_plot(section, sweep, list(TEMPERATURES), "temperature T",
                   ["auc", "auc_rebalanced", "colorfulness"], path)
    section.figures = [("AuC, rebalanced AuC and colorfulness against T (rebalanced model)",
                        link),
                       ("photos val: gray | no rebalancing | rebalanced | truth",
                        comparison.grid(context, "002_photos_grid.png", list(runs)))]
    return section


def section_001(context, classify):
    """Seed 001: Koalarization with vs without the fused global embedding."""
    budget = context.budget
    records = photo_records(context)
    runs = {
        "fusion (Lite0 embedding)": train_run(
            context, "001_fusion", "koalarization_lite", records, budget.photo_size,
            with_embedding=True, changes={"model.kwargs.embedding_source": "input",
                                          "model.kwargs.embedding_dim": 1280}),
        "no fusion": train_run(context, "001_none", "koalarization_lite", records,
                               budget.photo_size,
                               changes={"model.kwargs.embedding_source": "none"}),
    }
    comparison = Comparison(runs["fusion (Lite0 embedding)"][1], budget.eval_images,
                            classify=classify)
    comparison.add("gray", np.zeros_like(comparison.truth))
    for method, (model, _, kind) in runs.items():
        comparison.add_model(method, model, kind)
    claims = [
        fmt.Claim("Fusing a global classifier embedding lowers the val MSE", "mse",
                  "fusion (Lite0 embedding)", "<", "no fusion"),
        fmt.Claim("Fusion makes colorizations more semantically interpretable", "top1_agreement",
                  "fusion (Lite0 embedding)", ">", "no fusion"),
    ]
    setup = _setup(context, records, [
        f"Model: `koalarization` (Table 1 encoder/decoder) at {budget.photo_size} px; the "
        "fusion layer tiles the 1280-d pooled EfficientNet-Lite0 embedding of the gray image, "
        "precomputed into the records (the paper precomputes Inception-ResNet-v2's), vs the "
        "same network with no fusion input (`embedding_source=none`).",
        "Semantic interpretability: % of images whose colorization the offline ImageNet "
        "classifier (EfficientNet-Lite0, 224 px) puts in the same top-1 class as the true "
        "photo.", "The paper has no ablation; the claim is the premise of its design."])
    return fmt.Section("001", "Deep Koalarization: with vs without the global embedding",
                       setup, comparison.with_truth(), claims,
                       [("photos val: gray | fusion | no fusion | truth",
                         comparison.grid(context, "001_photos_grid.png", list(runs)))],
                       notes=ONE_SEED)


def reference_photos(context):
    """[(folder, [RGB photos])] from photos/val: the first photos of the first folders."""

    budget = context.budget
    root = context.data / "photos" / "val"
    folders = sorted({p.parent for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES})
    chosen = []
    for folder in folders[:budget.reference_folders]:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        photos = [image_io.read_image(p)[..., :3] for p in paths[:budget.reference_per_folder]]
        if len(photos) > 1:
            chosen.append((folder.name, photos))
    return chosen


def section_003(context):
    """Seed 003: reference-guided colorization vs the model alone (raw accuracy).

    The model is section 000's plain-MSE run (so section 000 runs first).
    """
    from koala import bundle as bundle_lib  # noqa: PLC0415
    from koala.inference import colorizer as colorizer_lib  # noqa: PLC0415

    bundle = bundle_lib.load(context.workdir / "runs" / "000_mse")
    colorizer = colorizer_lib.Colorizer(bundle)
    methods = {"model alone": [], "guided by a similar photo": [],
               "guided by the true photo (bound)": []}
    scores = {m: {"raw_accuracy": [], "auc": [], "colorfulness": []} for m in methods}
    grid = {"gray": [], **{m: [] for m in methods}, "truth": []}
    count = 0
    for _, photos in reference_photos(context):
        for index, truth in enumerate(photos):
            references = {"model alone": None,
                          "guided by a similar photo": photos[(index + 1) % len(photos)],
                          "guided by the true photo (bound)": truth}
            true_ab = color.rgb_to_lab_cv2(truth)[..., 1:]
            for method, reference in references.items():
                rgb = colorizer_lib.colorize(truth, colorizer, reference=reference)
                ab = color.rgb_to_lab_cv2(rgb)[..., 1:]
                scores[method]["raw_accuracy"].append(
                    metrics.raw_accuracy(ab, true_ab, ACCURACY_THRESHOLD))
                scores[method]["auc"].append(metrics.auc(ab, true_ab))
                scores[method]["colorfulness"].append(metrics.colorfulness(rgb))
                if count < GRID_ROWS:
                    grid[method].append(rgb)
            if count < GRID_ROWS:
                grid["gray"].append(photo.gray_version(truth))
                grid["truth"].append(truth)
            count += 1
    path, link = context.figure("003_reference_grid.png")
    fmt.image_grid(grid, path, GRID_ROWS)
    claims = [
        fmt.Claim("A similar reference photo raises raw accuracy over the model alone",
                  "raw_accuracy", "guided by a similar photo", ">", "model alone"),
        fmt.Claim("(bound) the true photo as reference raises it further", "raw_accuracy",
                  "guided by the true photo (bound)", ">", "guided by a similar photo"),
    ]
    setup = "\n".join([
        f"- Photos: {count} from photos/val ({context.budget.reference_per_folder} per class "
        f"folder, first {context.budget.reference_folders} folders), at full resolution.",
        "- Model: the plain-MSE EfficientNet head of section 000 (same run).",
        "- Guidance (koala.inference.reference, after Welsh et al. 2002): colours transferred from the "
        "reference by luminance + neighbourhood statistics matching, blended with the model's "
        "ab by match quality. Similar photo = the next photo of the same class folder.",
        f"- Raw accuracy: % of pixels whose ab lies within {ACCURACY_THRESHOLD:g} of the "
        "truth (in ab, not RGB as the proposal wrote)."])
    return fmt.Section("003", "Reference-guided colorization vs the model alone", setup,
                       {m: {k: np.asarray(v) for k, v in s.items()} for m, s in scores.items()},
                       claims, [("photos val: gray | alone | similar ref. | true ref. | truth",
                                 link)],
                       notes="No training here; ± is over photos.")


# --------------------------------------------------------------------------- the report

def _timed(function, *args):
    started = time.perf_counter()
    section = function(*args)
    section.seconds = time.perf_counter() - started
    logging.info("report: section %s took %.0f s", section.key, section.seconds)
    return section


def run(output, budget="cpu", workdir="runs/report", data="../shared/data", reuse_runs=False):
    """Runs every section at `budget`; writes `output` (Markdown) and its figures beside it.

    Returns the list of Sections (for tests and callers that want the numbers).
    """
    started = time.perf_counter()
    budget = BUDGETS[budget]
    output = pathlib.Path(output)
    figures = output.parent / "report_figures"
    figures.mkdir(parents=True, exist_ok=True)
    context = Context(budget, pathlib.Path(data), pathlib.Path(workdir) / budget.name,
                      figures, figures.name, reuse_runs)
    context.workdir.mkdir(parents=True, exist_ok=True)
    classify, skipped = judge.classifier_or_reason()
    if classify is None:
        raise RuntimeError(f"semantic interpretability needs the classifier: {skipped}")
    records_started = time.perf_counter()
    ensure_records(context, "cifar10", context.data / "cifar10", budget.cifar_images, 32)
    photo_records(context)
    records_seconds = time.perf_counter() - records_started
    sections = [_timed(section_004, context), _timed(section_000, context)]
    sections += [_timed(section_002, context), _timed(section_001, context, classify),
                 _timed(section_003, context)]
    total = time.perf_counter() - started
    header = _header(budget, total, records_seconds, sections, reuse_runs)
    output.write_text(fmt.markdown(sections, header))
    logging.info("report: wrote %s in %.0f s", output, total)
    return sections


def _header(budget, total, records_seconds, sections, reused):
    times = ", ".join(f"{s.key} {s.seconds:.0f} s" for s in sections)
    if reused:
        times += "; finished training runs were REUSED (--reuse_runs): training time not included"
    return "\n".join([
        "# Koala reproduction report", "",
        f"Generated by `koala report --budget {budget.name}` on "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}: small, seeded, CPU-sized versions of each "
        "paper's central comparison (papers in ../shared/papers). Every number below was "
        "measured by that run; nothing is copied from the papers except the claims.", "",
        f"**Wall time: {total / 60:.1f} min total** (records {records_seconds:.0f} s; {times}) "
        "on a 2-core CPU shared with other work (the run is niced), so times are upper "
        "bounds.", "",
        f"Budget `{budget.name}`: {budget.steps} training steps of batch {budget.batch} per "
        f"photo model ({budget.cifar_steps} for the CIFAR U-Nets), {budget.photo_size} px "
        f"photos ({budget.photos} sampled from photos/train, 10% held out), "
        f"{budget.cifar_images} CIFAR-10 images at 32 px, up to "
        f"{budget.eval_images} val images per comparison. The papers train for days on a GPU; "
        "these models are early in training, so a verdict says whether the claimed effect "
        "already shows at this budget, not whether the paper is right.", "",
        "How to read a verdict: for each claim, the per-image difference between the two "
        "methods is averaged over the same val images; **agrees** / **disagrees** when it is "
        "more than 2 standard errors in / against the claimed direction, else "
        "**inconclusive**."])
