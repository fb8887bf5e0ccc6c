"""A paper's claim, one claim's measured comparison, and the verdict (no training here).

A section holds, for each method it compares, per-image values of each metric measured on
the same images. A paper's claim names two methods, a metric and a direction; its verdict
is computed from the paired per-image differences: the mean difference must exceed twice
its standard error (about 95%) in the claimed direction to "agree", in the opposite one to
"disagree"; anything in between is "inconclusive at this budget". One training seed per
method, so seed-to-seed variance is not in that error: the verdict is about these trained
models on these images, which the report says next to every table.
"""

import dataclasses

import numpy as np

AGREES, DISAGREES, INCONCLUSIVE = "agrees", "disagrees", "inconclusive"
SIGNIFICANCE = 2.0  # |mean paired difference| / standard error needed for a verdict


@dataclasses.dataclass(frozen=True)
class Claim:
    """The paper says metric(first) RELATION metric(second), RELATION in {">", "<"}."""

    text: str
    metric: str
    first: str
    relation: str
    second: str


@dataclasses.dataclass
class Section:
    """One paper's comparison: what was run, what was measured, what the paper claims."""

    key: str  # the seed number, e.g. "004"
    title: str
    setup: str  # Markdown: data, models, steps
    methods: dict  # method -> {metric: per-image np.ndarray}
    claims: list
    figures: list = dataclasses.field(default_factory=list)  # (caption, file name)
    notes: str = ""
    seconds: float = 0.0


def mean(values):
    return float(np.mean(values))


def compare(section, claim):
    """(first mean, second mean, mean difference, 2 SE, verdict) for `claim` in `section`."""
    first = np.asarray(section.methods[claim.first][claim.metric], np.float64)
    second = np.asarray(section.methods[claim.second][claim.metric], np.float64)
    if first.shape != second.shape:
        raise ValueError(f"{claim.metric}: {claim.first} and {claim.second} were measured "
                         f"on different images ({first.shape} vs {second.shape})")
    difference = first - second
    error = difference.std(ddof=1) / np.sqrt(len(difference)) if len(difference) > 1 else 0.0
    signed = difference.mean() if claim.relation == ">" else -difference.mean()
    if error > 0:
        score = signed / error
    else:  # identical differences on every image: the sign alone decides
        score = np.sign(signed) * np.inf if signed else 0.0
    verdict = AGREES if score > SIGNIFICANCE else DISAGREES if score < -SIGNIFICANCE \
        else INCONCLUSIVE
    return mean(first), mean(second), float(difference.mean()), float(2 * error), verdict


def verdict_counts(sections):
    counts = {AGREES: 0, DISAGREES: 0, INCONCLUSIVE: 0}
    for section in sections:
        for claim in section.claims:
            counts[compare(section, claim)[-1]] += 1
    return counts
