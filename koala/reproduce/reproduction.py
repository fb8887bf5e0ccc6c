"""What a claim module declares, its paper's comparison as data, and the path most take.

A claim module holds a `Reproduction` (seed, paper, the runs it trains with their overrides,
the methods they become, the claims checked on which metrics) and `measure(context) ->
Section`. Most measures are `measure_trained`: train every run on the same records with the
same seed, steps and batch (so the only difference is the one the paper studies), measure
them beside the gray baseline on the same val images, and draw the figures.
"""

import dataclasses
from typing import Any, Mapping, Optional

import numpy as np

from koala.data import prior as prior_lib
from koala.reproduce import figures, runs
from koala.reproduce.budget import SEED, resolve
from koala.reproduce.measure import Comparison
from koala.reproduce.verdict import Section

ONE_SEED = ("One training seed per model: the ± is the paired standard error over images, "
            "not over training runs.")


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
    baseline: str = "gray"  # the row of the all-zero chroma prediction
    temperature: Optional[float] = None  # annealed mean of classification outputs
    prior: bool = False  # also measure the rebalanced AuC (weights by 1 / ab prior)
    judge: bool = False  # also measure top-1 agreement of the ImageNet classifier
    sweep: Optional[Sweep] = None
    notes: str = ONE_SEED

    @property
    def methods(self):
        """The trained methods compared, in table order."""
        return tuple(run.method for run in self.runs)


def setup_lines(spec, budget, **values):
    """The spec's setup as Markdown bullets."""
    return [f"- {line.format(budget=budget, **values)}" for line in spec.setup]


def measure_runs(context, spec):
    """Trains the spec's runs -> (records directory, Comparison with baseline and every
    run measured, {method: raw outputs})."""
    budget = context.budget
    directory, size = runs.records(context, spec.records)
    steps = getattr(budget, spec.steps)
    trained = {run.method: runs.train_run(context, run.name, run.experiment, directory, size,
                                          steps, run.with_embedding,
                                          resolve(run.overrides, budget))
               for run in spec.runs}
    prior = prior_lib.ab_prior(str(directory)) if spec.prior else None
    comparison = Comparison(next(iter(trained.values()))[1], budget.eval_images, prior=prior,
                            classify=context.classify if spec.judge else None)
    comparison.add(spec.baseline, np.zeros_like(comparison.truth))
    outputs = {method: comparison.add_model(method, model, kind, spec.temperature)
               for method, (model, _, kind) in trained.items()}
    return directory, comparison, outputs


def section(context, spec, directory, comparison, **values):
    """The Section of a trained comparison: setup (formatted with `values`), measurements
    with truth, figures."""
    budget = context.budget
    head = [f"- Records: `{directory.name}` ({directory.relative_to(context.workdir)} under "
            f"the report workdir), seeded sample, centre-cropped.",
            f"- Training: {getattr(budget, spec.steps)} steps, batch {budget.batch}, Adam "
            f"1e-3, seed {SEED}, float32, one CPU process; every compared model identical "
            f"except for the studied change."]
    shown = []
    if spec.sweep is not None:
        path, link = context.figure(spec.sweep.file)
        figures.sweep_plot(comparison.methods, spec.sweep.methods, spec.sweep.xs,
                           spec.sweep.xlabel, spec.sweep.metrics, path)
        shown.append((spec.sweep.caption, link))
    shown.append((spec.grid[1], comparison.grid(context, spec.grid[0], spec.methods)))
    setup = "\n".join(head + setup_lines(spec, budget, **values))
    return Section(spec.seed, spec.title, setup, comparison.with_truth(), list(spec.claims),
                   shown, spec.notes)


def measure_trained(context, spec):
    """The usual measure: train, measure on the same val images, one Section."""
    directory, comparison, _ = measure_runs(context, spec)
    return section(context, spec, directory, comparison)

