"""What a claim module declares, its paper's comparison as data, and the path most take.

A claim module holds a `Reproduction` (seed, paper, the runs it trains with their overrides,
the methods they become, the claims checked on which metrics) and `measure(context) ->
Section`. Most measures are `measure_trained`: train every run, once per training seed, on
the same records with the same steps, batch and schedule (so the only difference is the one
the paper studies), measure them beside the gray baseline on the same held-out images
(runs.held_out), and draw
the figures: an image grid, the learning curves from the runs' logs, and any sweep.
"""

import dataclasses
from typing import Any, Mapping, Optional

import numpy as np

from koala.data import prior as prior_lib
from koala.reproduce import figures, runs
from koala.reproduce.budget import resolve
from koala.reproduce.markdown import label
from koala.reproduce.measure import Comparison
from koala.reproduce.verdict import Section

SEEDS_NOTE = ("The ± and the verdicts combine two noises: the held-out images and the "
              "training seeds (every seed of every method measured on the same images).")


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run of a comparison; `method` names its row in the tables."""

    method: str
    name: str  # its folder under <workdir>/runs/
    experiment: str  # experiments/<name>.py, at its cpu (or tiny) variant
    # dotted config keys -> values (or budget.FromBudget): the change the paper studies
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    with_embedding: bool = False  # feed the records' precomputed embedding


@dataclasses.dataclass(frozen=True)
class PaperScale:
    """A comparison at its paper's own scale and data (`koala report --budget paper`): the
    records, size and schedule, and the full-size experiment each cpu run becomes."""

    source: str  # the records' images: "tfds:NAME[:SPLIT]" (koala.data.sources)
    size: int  # working size of the records and models
    steps: int
    batch: int
    images: int = 0  # at most this many source images (0: all); 10% are held out for val
    resize: str = "crop"  # how the records fit an image to `size` (koala.data.images)
    backbone: str = ""  # the embedding precomputed into the records ("" for none)
    weights: str = "imagenet"  # of that backbone and the models': a download, or a file
    # a cpu run's experiment -> the paper's (an experiment not named here stays as it is)
    experiments: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def experiment(self, name):
        """The experiment that the cpu run of experiment `name` becomes at paper scale."""
        return self.experiments.get(name, name)


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A figure of metric means against a parameter: one method per x value."""

    methods: tuple
    xs: tuple
    xlabel: str
    metrics: tuple
    file: str
    caption: str


@dataclasses.dataclass(frozen=True)
class Reproduction:
    """One paper's central comparison, as the report runs and checks it."""

    seed: str  # "000" .. "004", the paper's number in ../shared/papers
    title: str
    paper: str
    claims: tuple  # verdict.Claim: two methods, a metric, a direction
    setup: tuple  # Markdown lines, str.format-ted with budget= (and a measure's values)
    grid: tuple  # (file, caption) of the gray | methods | truth figure
    runs: tuple = ()  # Run
    records: str = "photos"  # or "cifar10": which runs.records they train on
    steps: str = "steps"  # the Budget field that gives every run's steps
    size: str = "photo_size"  # the Budget field that gives its photo records' size
    photos: str = "photos"  # the Budget field that gives how many photos they sample
    baseline: str = "gray"  # the row of the all-zero chroma prediction
    temperature: Optional[float] = None  # annealed mean of classification outputs
    prior: bool = False  # also measure the rebalanced AuC (weights by 1 / ab prior)
    judge: bool = False  # also measure top-1 agreement of the ImageNet classifier
    sweep: Optional[Sweep] = None
    notes: str = SEEDS_NOTE
    paper_scale: Optional[PaperScale] = None  # how `koala report --budget paper` runs it

    @property
    def fuses_embedding(self):
        """Whether a run reads the records' precomputed embedding (so they carry one)."""
        return any(run.with_embedding for run in self.runs)

    @property
    def methods(self):
        """The trained methods compared, in table order."""
        return tuple(run.method for run in self.runs)


def setup_lines(spec, budget, **values):
    """The spec's setup as Markdown bullets."""
    return [f"- {line.format(budget=budget, **values)}" for line in spec.setup]


def measure_runs(context, spec, decodings=None):
    """Trains the spec's runs, every training seed -> (records directory, Comparison with
    the baseline and every run measured, {method: [TrainedRun per seed]}).

    `decodings(comparison, method, outputs)` may add more methods from one seed's raw
    outputs (other temperatures): models are measured and dropped seed by seed.
    """
    directory, size = runs.records(context, spec.records, spec.paper_scale,
                                   getattr(context.budget, spec.size), spec.fuses_embedding,
                                   getattr(context.budget, spec.photos))
    held_out = runs.held_out(context, spec.records, size, spec.fuses_embedding)
    comparison, trained = None, {run.method: [] for run in spec.runs}
    for run, config in run_configs(context, spec, directory, size):
        result = runs.train_run(context, run.name, config)
        if comparison is None:
            prior = prior_lib.ab_prior(str(directory)) if spec.prior else None
            comparison = Comparison(runs.measured_on(config, held_out),
                                    context.budget.eval_images, prior=prior,
                                    classify=context.classify if spec.judge else None)
            comparison.add(spec.baseline, np.zeros_like(comparison.truth))
        outputs = comparison.add_model(run.method, result.model, result.kind, spec.temperature)
        if decodings is not None:
            decodings(comparison, run.method, outputs)
        result.model = None  # measured: free it before the next run
        trained[run.method].append(result)
    return directory, comparison, trained


def run_configs(context, spec, directory, size):
    """[(Run, its ConfigDict)] of the spec's training runs on the records `directory` at
    `size`, every run of training seed 0 first, then seed 1, ...: the budget's sizes and
    schedule, or the spec's PaperScale (Budget.for_comparison decides)."""
    budget = context.budget.for_comparison(spec.paper_scale)
    steps = getattr(budget, spec.steps)
    return [(run, runs.run_config(context, run.experiment, directory, size, steps, seed,
                                  run.with_embedding, resolve(run.overrides, budget),
                                  spec.paper_scale))
            for seed in range(budget.seeds) for run in spec.runs]


def setup_head(context, spec, directory):
    """The Markdown bullets every trained section starts with: records and training."""
    budget = context.budget.for_comparison(spec.paper_scale)
    if budget.at_paper_scale:
        return paper_setup_head(context, spec, directory)
    held_out = runs.held_out(context, spec.records, getattr(budget, spec.size),
                             spec.fuses_embedding)
    return [f"- Records: `{directory.name}` ({directory.relative_to(context.workdir)} under "
            f"the report workdir), seeded sample, centre-cropped. Measured on "
            f"`{held_out.name}`: {runs.val_count(held_out)} held-out images.",
            f"- Training: {budget.seeds} training seeds per model (0-{budget.seeds - 1}); "
            f"{getattr(budget, spec.steps)} steps of batch {budget.batch}, Adam, peak "
            f"learning rate {budget.learning_rate:g} after {budget.warmup_steps} warmup "
            f"steps, cosine decay to 0, float32, one CPU process; every compared model "
            f"identical except for the studied change."]


def paper_setup_head(context, spec, directory):
    """setup_head at paper scale: the paper's data and schedule, and the experiments that
    replace the cpu report's (the spec's own setup lines name the cpu models)."""
    budget, scale = context.budget, spec.paper_scale
    embedding = f", {scale.backbone} embedding precomputed" if scale.backbone else ""
    replaced = sorted({(run.experiment, scale.experiment(run.experiment)) for run in spec.runs
                       if scale.experiment(run.experiment) != run.experiment})
    experiments = "".join(f"; `{paper}` (the paper's backbone) in place of the cpu "
                          f"report's `{cpu}`" for cpu, paper in replaced)
    return [f"- Records: `{directory.name}` ({directory.relative_to(context.workdir)} under "
            f"the report workdir): `{scale.source}`"
            f"{f', first {scale.images}' if scale.images else ''}, {scale.size} px "
            f"(resize: {scale.resize}){embedding}; 10% held out.",
            f"- Training at the paper's scale: {budget.seeds} training seeds per model "
            f"(0-{budget.seeds - 1}); {scale.steps} steps of batch {scale.batch}; each "
            f"experiment at its own settings (the paper's optimizer and learning rate; "
            f"precision from the hardware){experiments}; every compared model identical "
            f"except for the studied change."]


def section(context, spec, directory, comparison, trained, **values):
    """The Section of a trained comparison: setup (formatted with `values`), measurements
    with truth, figures (sweep, learning curves, image grid), training time."""
    budget = context.budget.for_comparison(spec.paper_scale)
    shown = []
    measured = comparison.with_truth()
    if spec.sweep is not None:
        path, link = context.figure(spec.sweep.file)
        figures.sweep_plot(measured, spec.sweep.methods, spec.sweep.xs, spec.sweep.xlabel,
                           spec.sweep.metrics, path)
        shown.append((spec.sweep.caption, link))
    curves = {method: [runs.learning_curve(r.workdir) for r in results]
              for method, results in trained.items()}
    metrics = figures.curve_metrics(spec.claims, curves)
    if metrics:
        path, link = context.figure(f"{spec.seed}_learning_curves.png")
        gray = {metric: float(np.mean(values))
                for metric, values in measured[spec.baseline].items()}
        figures.learning_curves(curves, metrics, path, gray)
        shown.append((f"Learning curves: {', '.join(label(m) for m in metrics)} on the "
                      f"records' val split as the training loop logged them (not the "
                      f"tables' held-out images), against step (thin: one "
                      f"seed; thick: their mean; dashed: gray)", link))
    shown.append((spec.grid[1], comparison.grid(context, spec.grid[0], spec.methods)))
    setup = "\n".join(setup_head(context, spec, directory)
                      + setup_lines(spec, budget, **values))
    result = Section(spec.seed, spec.title, setup, measured, list(spec.claims), shown,
                     spec.notes, baseline=spec.baseline)
    # what earlier sessions spent on the runs reused here; koala.reproduce.run adds the
    # time of this session
    result.seconds = sum(r.seconds for results in trained.values() for r in results
                         if r.reused)
    return result


def measure_trained(context, spec):
    """The usual measure: train, measure on the same val images, one Section."""
    directory, comparison, trained = measure_runs(context, spec)
    return section(context, spec, directory, comparison, trained)
