"""A paper's claim, one claim's measured comparison, and the verdict (no training here).

A section holds, for each method it compares, values of each metric per training seed and
per image: arrays [seeds, images], all measured on the same images (a method that trains
nothing, such as the gray baseline, has one row). A paper's claim names two methods, a
metric and a direction; its verdict comes from the paired differences. Two sources of noise
count: the images (which val photos were drawn) and the training seeds (which run one
got). The standard error of the mean difference combines both,
SE^2 = SE_images^2 + SE_seeds^2, and the claim "agrees" only when every seed shows the
claimed sign and the mean difference exceeds 2 SE; "disagrees" symmetrically; anything else
is "inconclusive at this budget", reported with its effect size against that noise.
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
    methods: dict  # method -> {metric: np.ndarray [seeds, images]}
    claims: list
    figures: list = dataclasses.field(default_factory=list)  # (caption, file name)
    notes: str = ""
    seconds: float = 0.0
    baseline: str = ""  # the method every trained one must beat (gray: ab = 0)
    bounds: tuple = ()  # methods that see the truth (an oracle): not models to rank


@dataclasses.dataclass(frozen=True)
class Difference:
    """metric(first) - metric(second), paired over images and seeds."""

    first: float  # mean of first over seeds and images
    second: float
    mean: float  # mean difference
    standard_error: float  # of the mean difference (images and seeds combined)
    seed_means: tuple  # mean difference of each training seed
    verdict: str = INCONCLUSIVE

    @property
    def seeds_with_sign(self):
        """How many seeds show the difference's own sign."""
        return sum(np.sign(m) == np.sign(self.mean) for m in self.seed_means)


def per_seed(values):
    """values as [seeds, images] (a 1-D array is one seed)."""
    values = np.asarray(values, np.float64)
    return values[None] if values.ndim == 1 else values


def mean(values):
    return float(np.mean(values))


def difference(first, second):
    """Difference of two [seeds, images] measurements (a single-row side broadcasts)."""
    first, second = per_seed(first), per_seed(second)
    if first.shape[1] != second.shape[1]:
        raise ValueError(f"measured on different images ({first.shape[1]} vs "
                         f"{second.shape[1]})")
    paired = first - second  # [seeds, images]
    seeds, images = paired.shape
    image_error = paired.mean(axis=0).std(ddof=1) / np.sqrt(images) if images > 1 else 0.0
    seed_means = paired.mean(axis=1)
    seed_error = seed_means.std(ddof=1) / np.sqrt(seeds) if seeds > 1 else 0.0
    return Difference(mean(first), mean(second), float(paired.mean()),
                      float(np.hypot(image_error, seed_error)),
                      tuple(float(m) for m in seed_means))


def compare(section, claim):
    """The claim's Difference, its verdict filled in."""
    try:
        measured = difference(section.methods[claim.first][claim.metric],
                              section.methods[claim.second][claim.metric])
    except ValueError as error:
        raise ValueError(f"{claim.metric}: {claim.first} and {claim.second} were {error}") \
            from None
    sign = 1.0 if claim.relation == ">" else -1.0
    signed = sign * measured.mean
    seeds_signed = [sign * m for m in measured.seed_means]
    needed = SIGNIFICANCE * measured.standard_error
    if signed > needed and all(m > 0 for m in seeds_signed):
        verdict = AGREES
    elif signed < -needed and all(m < 0 for m in seeds_signed):
        verdict = DISAGREES
    else:
        verdict = INCONCLUSIVE
    return dataclasses.replace(measured, verdict=verdict)


def verdict_counts(sections):
    counts = {AGREES: 0, DISAGREES: 0, INCONCLUSIVE: 0}
    for section in sections:
        for claim in section.claims:
            counts[compare(section, claim).verdict] += 1
    return counts
