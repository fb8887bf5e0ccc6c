"""Seed 003 (Phung & Shin): reference-guided colorization vs the model alone (raw accuracy).

No training here: the model is seed 000's plain-MSE run (so that claim runs first), applied
at full resolution to photos of photos/val with three choices of reference.
"""

import numpy as np

from koala import color, image_io, photo
from koala.bundle import keras_bundle
from koala.evaluation import metrics
from koala.image_io import IMAGE_SUFFIXES
from koala.inference import colorizer as colorizer_lib
from koala.reproduce import figures
from koala.reproduce.claims import rarity_mse
from koala.reproduce.measure import ACCURACY_THRESHOLD, GRID_ROWS
from koala.reproduce.reproduction import Reproduction, setup_lines
from koala.reproduce.verdict import Claim, Section

MODEL_RUN = rarity_mse.PLAIN.name
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
        "Model: the plain-MSE EfficientNet head of section 000 (same run).",
        "Guidance (koala.inference.reference, after Welsh et al. 2002): colours transferred "
        "from the reference by luminance + neighbourhood statistics matching, blended with "
        "the model's ab by match quality. Similar photo = the next photo of the same class "
        "folder.",
        "Raw accuracy: % of pixels whose ab lies within {threshold:g} of the truth (in ab, "
        "not RGB as the proposal wrote).",
    ),
    grid=("003_reference_grid.png", "photos val: gray | alone | similar ref. | true ref. | truth"),
    notes="No training here; ± is over photos.",
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


def _colorize_all(context, colorizer):
    """({method: {metric: [per photo]}}, grid columns of the first GRID_ROWS, photo count)."""
    scores = {m: {"raw_accuracy": [], "auc": [], "colorfulness": []} for m in REFERENCES}
    grid = {"gray": [], **{m: [] for m in REFERENCES}, "truth": []}
    count = 0
    for _, photos in reference_photos(context):
        for index, truth in enumerate(photos):
            true_ab = color.rgb_to_lab_cv2(truth)[..., 1:]
            colorized = {method: colorizer_lib.colorize(truth, colorizer,
                                                        reference=choose(photos, index))
                         for method, choose in REFERENCES.items()}
            for method, rgb in colorized.items():
                ab = color.rgb_to_lab_cv2(rgb)[..., 1:]
                scores[method]["raw_accuracy"].append(
                    metrics.raw_accuracy(ab, true_ab, ACCURACY_THRESHOLD))
                scores[method]["auc"].append(metrics.auc(ab, true_ab))
                scores[method]["colorfulness"].append(metrics.colorfulness(rgb))
            if count < GRID_ROWS:
                row = {"gray": photo.gray_version(truth), **colorized, "truth": truth}
                for column, image in row.items():
                    grid[column].append(image)
            count += 1
    return scores, grid, count


def measure(context):
    colorizer = colorizer_lib.Colorizer(keras_bundle.load(context.workdir / "runs" / MODEL_RUN))
    scores, grid, count = _colorize_all(context, colorizer)
    path, link = context.figure(SPEC.grid[0])
    figures.save_image_grid(grid, path, GRID_ROWS)
    setup = setup_lines(SPEC, context.budget, count=count, threshold=ACCURACY_THRESHOLD)
    return Section(SPEC.seed, SPEC.title, "\n".join(setup),
                   {m: {k: np.asarray(v) for k, v in s.items()} for m, s in scores.items()},
                   list(SPEC.claims), [(SPEC.grid[1], link)], notes=SPEC.notes)
