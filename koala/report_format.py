"""The reproduction report's tables, verdicts, figures and Markdown (no training here).

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

METRIC_LABELS = {  # key -> (column header, format); columns follow this order
    "mse": ("MSE (model units)", "{:.4f}"),
    "chroma_se": ("chroma SE / pixel", "{:.4g}"),
    "psnr": ("PSNR dB", "{:.2f}"),
    "auc": ("AuC %", "{:.2f}"),
    "auc_rebalanced": ("AuC rebal. %", "{:.2f}"),
    "raw_accuracy": ("raw acc. @10 %", "{:.1f}"),
    "colorfulness": ("colorfulness", "{:.1f}"),
    "top1_agreement": ("top-1 agree %", "{:.1f}"),
}


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


def _format(metric, value):
    return METRIC_LABELS.get(metric, (metric, "{:.3f}"))[1].format(value)


def results_table(section):
    """Methods x metrics, each cell the mean over the section's images."""
    metrics = [m for m in METRIC_LABELS if any(m in v for v in section.methods.values())]
    lines = ["| method | images | " + " | ".join(METRIC_LABELS[m][0] for m in metrics) + " |",
             "|---|---:|" + "---:|" * len(metrics)]
    for method, values in section.methods.items():
        count = len(next(iter(values.values())))
        cells = [_format(m, mean(values[m])) if m in values else "" for m in metrics]
        lines.append(f"| {method} | {count} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def claims_table(section):
    """Each claim beside what was measured, the paired difference and the verdict."""
    lines = ["| paper's claim | metric | measured | difference ± 2 SE | verdict |",
             "|---|---|---|---|---|"]
    for claim in section.claims:
        first, second, difference, error, verdict = compare(section, claim)
        measured = (f"{claim.first} {_format(claim.metric, first)} vs "
                    f"{claim.second} {_format(claim.metric, second)}")
        lines.append(f"| {claim.text} | {METRIC_LABELS.get(claim.metric, (claim.metric,))[0]} "
                     f"| {measured} | {difference:+.3g} ± {error:.2g} | **{verdict}** |")
    return "\n".join(lines)


def headline_table(sections):
    """One row per claim over every section: the table a reader looks at first."""
    lines = ["| seed | paper's claim | measured | verdict |", "|---|---|---|---|"]
    for section in sections:
        for claim in section.claims:
            first, second, _, _, verdict = compare(section, claim)
            lines.append(f"| {section.key} | {claim.text} | {claim.first} "
                         f"{_format(claim.metric, first)} {claim.relation}? {claim.second} "
                         f"{_format(claim.metric, second)} "
                         f"({METRIC_LABELS.get(claim.metric, (claim.metric,))[0]}) "
                         f"| {verdict} |")
    return "\n".join(lines)


def verdict_counts(sections):
    counts = {AGREES: 0, DISAGREES: 0, INCONCLUSIVE: 0}
    for section in sections:
        for claim in section.claims:
            counts[compare(section, claim)[-1]] += 1
    return counts


def markdown(sections, header):
    """The whole REPORT.md: header, headline table, then one part per section."""
    counts = verdict_counts(sections)
    parts = [header.rstrip(), "",
             f"Verdicts: {counts[AGREES]} agree, {counts[DISAGREES]} disagree, "
             f"{counts[INCONCLUSIVE]} inconclusive at this budget.", "",
             "## Headline", "", headline_table(sections), ""]
    for section in sections:
        parts += [f"## {section.key}: {section.title}", "",
                  f"Wall time: {section.seconds:.0f} s.", "", section.setup.rstrip(), "",
                  "### Measured (means over the same images)", "", results_table(section), "",
                  "### Claims", "", claims_table(section), ""]
        if section.notes:
            parts += [section.notes.rstrip(), ""]
        for caption, name in section.figures:
            parts += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    return "\n".join(parts)


# --------------------------------------------------------------------------- figures

def _pyplot():
    import matplotlib  # noqa: PLC0415 (only when figures are written)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def image_grid(columns, path, rows=4):
    """columns: {title: [uint8 RGB image, ...]} (same length) -> one PNG, rows x columns."""
    plt = _pyplot()
    titles = list(columns)
    count = min(rows, min(len(images) for images in columns.values()))
    figure, axes = plt.subplots(count, len(titles), squeeze=False,
                                figsize=(1.8 * len(titles), 1.8 * count))
    for c, title in enumerate(titles):
        for r in range(count):
            axes[r][c].imshow(columns[title][r], interpolation="nearest")
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
        axes[0][c].set_title(title, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def sweep_plot(section, methods, xs, xlabel, metrics, path):
    """Means of `metrics` over `methods` (one x value each), one panel per metric."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(metrics), squeeze=False, figsize=(3.2 * len(metrics), 2.8))
    for axis, metric in zip(axes[0], metrics):
        axis.plot(xs, [mean(section.methods[m][metric]) for m in methods], marker="o")
        axis.set_xlabel(xlabel)
        axis.set_title(METRIC_LABELS.get(metric, (metric,))[0], fontsize=9)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
