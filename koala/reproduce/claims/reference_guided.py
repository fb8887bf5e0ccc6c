"""Seed 003 (Phung & Shin): reference-guided colorization vs the model alone (raw accuracy).

No training here: the models are seed 000's plain-MSE runs, one per training seed (so that
claim runs first), applied at full resolution to photos of photos/val with three choices of
reference, beside the gray photo (ab = 0).
"""

import numpy as np

from koala import color, image_io, photo
from koala.bundle import keras_bundle
from koala.evaluation import metrics
from koala.image_io import IMAGE_SUFFIXES
from koala.inference import colorizer as colorizer_lib
from koala.reproduce import figures, runs as runs_lib
from koala.reproduce.claims import rarity_mse
from koala.reproduce.measure import ACCURACY_THRESHOLD, GRID_ROWS
from koala.reproduce.reproduction import Reproduction, setup_lines
from koala.reproduce.verdict import Claim, Section

MODEL_RUN = rarity_mse.PLAIN.name
GRAY = "gray"
METRICS = ("psnr", "raw_accuracy", "auc", "colorfulness")
ALONE, SIMILAR, TRUE = ("model alone", "guided by a similar photo",
                        "guided by the true photo (bound)")
REFERENCES = {  # method -> the reference it gives photos[index] (None: no reference)
    ALONE: lambda photos, index: None,
    SIMILAR: lambda photos, index: photos[(index + 1) % len(photos)],  # same class folder
    TRUE: lambda photos, index: photos[index],
}

SPEC = Reproduction(
    seed="003",
    title="Reference-guided colorization vs the model alone",
    paper='Phung & Shin, "Bringing Images to Life with CNNs" (proposal)',
    claims=(
        Claim("A similar reference photo raises raw accuracy over the model alone",
              "raw_accuracy", SIMILAR, ">", ALONE),
        Claim("(bound) the true photo as reference raises it further", "raw_accuracy",
              TRUE, ">", SIMILAR),
    ),
    setup=(
        "Photos: {count} from photos/val ({budget.reference_per_folder} per class folder, "
        "first {budget.reference_folders} folders), at full resolution.",
        "Models: the plain-MSE EfficientNet head of section 000 (the same runs, one per "
        "training seed).",
        "Guidance (koala.inference.reference, after Welsh et al. 2002): colours transferred "
        "from the reference by luminance + neighbourhood statistics matching, blended with "
        "the model's ab by match quality. Similar photo = the next photo of the same class "
        "folder.",
        "Raw accuracy: % of pixels whose ab lies within {threshold:g} of the truth (in ab, "
        "not RGB as the proposal wrote).",
    ),
    grid=("003_reference_grid.png", "photos val: gray | alone | similar ref. | true ref. | truth"),
    notes="No training here; the ± combines photos and the training seeds of section 000's "
          "models.",
)


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


def _scores(rgb, truth, true_ab):
    ab = color.rgb_to_lab_cv2(rgb)[..., 1:]
    return {"psnr": metrics.psnr(rgb / 255.0, truth / 255.0),
            "raw_accuracy": metrics.raw_accuracy(ab, true_ab, ACCURACY_THRESHOLD),
            "auc": metrics.auc(ab, true_ab), "colorfulness": metrics.colorfulness(rgb)}


def _colorize_all(context, colorizers):
    """({method: {metric: [seeds, photos]}}, grid columns of the first GRID_ROWS (first
    seed), photo count)."""
    scores = {m: {k: [[] for _ in colorizers] for k in METRICS} for m in REFERENCES}
    gray_scores = {k: [[]] for k in METRICS}
    grid = {"gray": [], **{m: [] for m in REFERENCES}, "truth": []}
    count = 0
    for _, photos in reference_photos(context):
        for index, truth in enumerate(photos):
            true_ab = color.rgb_to_lab_cv2(truth)[..., 1:]
            gray = photo.gray_version(truth)
            for metric, value in _scores(gray, truth, true_ab).items():
                gray_scores[metric][0].append(value)
            for seed, colorizer in enumerate(colorizers):
                colorized = {method: colorizer_lib.colorize(truth, colorizer,
                                                            reference=choose(photos, index))
                             for method, choose in REFERENCES.items()}
                for method, rgb in colorized.items():
                    for metric, value in _scores(rgb, truth, true_ab).items():
                        scores[method][metric][seed].append(value)
                if seed == 0 and count < GRID_ROWS:
                    row = {"gray": gray, **colorized, "truth": truth}
                    for column, image in row.items():
                        grid[column].append(image)
            count += 1
    return {GRAY: gray_scores, **scores}, grid, count


def measure(context):
    trained = context.workdir / "runs" / MODEL_RUN
    folders = [trained / f"seed{seed}" for seed in range(context.budget.seeds)]
    missing = [str(f) for f in folders if not (f / runs_lib.SECONDS).is_file()]
    if missing:
        raise ValueError(f"{', '.join(missing)}: no trained model (section 000 trains them "
                         f"first)")
    colorizers = [colorizer_lib.Colorizer(keras_bundle.load(folder)) for folder in folders]
    scores, grid, count = _colorize_all(context, colorizers)
    path, link = context.figure(SPEC.grid[0])
    figures.save_image_grid(grid, path, GRID_ROWS)
    setup = setup_lines(SPEC, context.budget, count=count, threshold=ACCURACY_THRESHOLD)
    return Section(SPEC.seed, SPEC.title, "\n".join(setup),
                   {m: {k: np.asarray(v, np.float64) for k, v in s.items()}
                    for m, s in scores.items()},
                   list(SPEC.claims), [(SPEC.grid[1], link)], notes=SPEC.notes, baseline=GRAY,
                   bounds=(TRUE,))
