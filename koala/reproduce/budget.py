"""How big every run of the report is, and where its files go.

A `Budget` scales everything at once: "tiny" proves the pipeline in about a minute (CI);
"cpu" is the committed report, at most 4 hours of a 2-core machine (it resumes, so it may
span sessions). The models are far from the papers' convergence: the report measures
whether each claimed effect shows in models that already beat leaving the photo gray.
"paper" runs each comparison at its paper's own scale and data instead (its
reproduction.PaperScale): days of a GPU or TPU.
"""

import dataclasses
import math
import pathlib
from typing import Callable, Optional

SEED = 0  # of the record samples (training runs use seeds 0 .. Budget.seeds - 1)


@dataclasses.dataclass(frozen=True)
class Budget:
    """How big every run of the report is."""

    name: str
    variant: str  # the experiments' variant every run starts from (experiments/common.py)
    seeds: int  # training seeds per model
    # optimizer steps of the other photo models' runs (section 001's: at 64 px its curves
    # are flat after ~600 steps; seed 0 at 2,000 steps +0.42 dB over gray, 3 seeds at
    # 3,000 +0.45)
    steps: int
    head_steps: int  # section 000's runs: its head on frozen Lite0 features
    # its photos: Lite0's stride 32 leaves a 2x2 grid of features at 64 px (MSE model +0.14
    # dB over gray on photos/val, 3,000 steps), 4x4 at 128 px (+0.49 over 3 seeds, 5,000
    # steps; its curve flat after 3,500) and 5x5 at 160 px (seed 0: +0.62 at 4,000 steps,
    # against +0.53 at 128 px)
    head_photo_size: int
    # section 002's Zhang et al. nets: at 64 px the plain model's curve is flat from 3,000
    # steps at +0.44 dB over gray (3 seeds, 4,500 steps); at 96 px, +0.63 (seed 0, 3,000)
    zhang_steps: int
    zhang_photo_size: int
    cifar_steps: int  # the 32 px CIFAR U-Nets: ~8x cheaper a step, so they get more
    batch: int
    photo_size: int  # working size of the photo records (divisible by 32)
    photos: int  # photos sampled from photos/train (10% become the val split)
    # section 001's sample: its encoder learns from scratch and overfits 4,000 photos (train
    # MSE falls from 0.0098 to 0.0070 while val stays at 0.0099 after ~600 steps); 16,000,
    # with the embedding at 224 px: fusion +0.77 dB over gray (3 seeds), but the arm without
    # fusion stays below gray (-0.64; -0.81 for seed 0 at a peak rate of 3e-3)
    koalarization_photos: int
    cifar_images: int  # CIFAR-10 images sampled (10% val)
    eval_images: int  # at most this many held-out images measured per comparison
    unet_width: int  # seed 004 U-Net base width
    zhang_width: float  # zhang_eccv16 width multiplier
    reference_folders: int  # photos/val class folders used by seed 003
    # photos of each: 10 (160 photos) left section 003's table at ±0.46 dB; 25 (400, the
    # smallest folder has 28) takes ~1.5 min a training seed
    reference_per_folder: int
    learning_rate: float  # Adam's peak rate: papers' rates (Zhang's 3e-5) are for 10^5 steps
    warmup_steps: int  # then cosine decay to 0 over the run
    curve_points: int = 10  # validations per run: the learning curves' points
    curve_images: int = 0  # images of each validation (0: eval_images), from the records' val
    # each comparison at its paper's scale (its PaperScale), the experiments at their own
    # settings (no variant), not at this budget's sizes, variant and schedule
    at_paper_scale: bool = False

    def for_comparison(self, paper_scale):
        """This budget as a comparison runs it: at paper scale with the size, steps and batch
        of its `paper_scale` (a reproduction.PaperScale; None for one that trains nothing)."""
        if not self.at_paper_scale or paper_scale is None:
            return self
        size, steps = paper_scale.size, paper_scale.steps
        return dataclasses.replace(self, photo_size=size, head_photo_size=size,
                                   zhang_photo_size=size, steps=steps, head_steps=steps,
                                   zhang_steps=steps, cifar_steps=steps,
                                   batch=paper_scale.batch)

    @property
    def curve_batches(self):
        """Validation batches of each learning-curve point."""
        return math.ceil((self.curve_images or self.eval_images) / self.batch)


BUDGETS = {
    "tiny": Budget("tiny", "tiny", seeds=2, steps=2, head_steps=2, head_photo_size=32,
                   zhang_steps=2, zhang_photo_size=32,
                   cifar_steps=2, batch=4, photo_size=32,
                   photos=30, koalarization_photos=24, cifar_images=40, eval_images=6,
                   unet_width=8, zhang_width=0.125,
                   reference_folders=2, reference_per_folder=2, learning_rate=1e-3,
                   warmup_steps=0, curve_points=2),
    "cpu": Budget("cpu", "cpu", seeds=3, steps=2000, head_steps=4000, head_photo_size=160,
                  zhang_steps=3000, zhang_photo_size=96,
                  cifar_steps=4000, batch=16,
                  photo_size=64, photos=4000, koalarization_photos=16000, cifar_images=5000,
                  eval_images=2000,
                  unet_width=16, zhang_width=0.25, reference_folders=16,
                  reference_per_folder=25, learning_rate=1e-3, warmup_steps=100,
                  curve_images=400),
    # Size, steps and batch come from each comparison's PaperScale (for_comparison), records
    # from its paper's data, optimizer, rate and precision from the experiments: this
    # entry's values of those fields are read only by run.py's header.
    "paper": Budget("paper", "", seeds=3, steps=100_000, head_steps=100_000,
                    head_photo_size=224, zhang_steps=100_000, zhang_photo_size=176,
                    cifar_steps=20_000, batch=32,
                    photo_size=224, photos=0, koalarization_photos=0, cifar_images=0,
                    eval_images=1000,
                    unet_width=32, zhang_width=1.0,  # the models' own widths (unet, Zhang's)
                    reference_folders=16, reference_per_folder=10, learning_rate=1e-3,
                    warmup_steps=0, at_paper_scale=True),
}


@dataclasses.dataclass(frozen=True)
class FromBudget:
    """A config override whose value is the budget's field `field` (a width that scales)."""

    field: str


def resolve(overrides, budget):
    """`overrides` with every FromBudget replaced by the budget's value."""
    return {key: getattr(budget, value.field) if isinstance(value, FromBudget) else value
            for key, value in overrides.items()}


@dataclasses.dataclass
class Context:
    """Where things are and what they cost: shared by every claim."""

    budget: Budget
    data: pathlib.Path  # ../shared/data
    workdir: pathlib.Path  # records/ and runs/ of this budget
    figures: pathlib.Path  # PNGs beside REPORT.md
    figures_link: str  # how REPORT.md refers to that folder
    classify: Optional[Callable] = None  # the ImageNet judge of semantic interpretability
    reused_runs: int = 0  # finished training runs found in the workdir (the report resumed)

    def figure(self, name):
        """(path to write, link from REPORT.md) of the figure file `name`."""
        return self.figures / name, f"{self.figures_link}/{name}"
