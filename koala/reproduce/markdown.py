"""REPORT.md: the header's verdict counts, the headline table, and one part per claim with
its measured means and each of the paper's claims beside the paired difference."""

from koala.reproduce.verdict import AGREES, DISAGREES, INCONCLUSIVE, compare, mean, \
    verdict_counts

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


def label(metric):
    """The metric's column header (its key when it has none)."""
    return METRIC_LABELS.get(metric, (metric,))[0]


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
        lines.append(f"| {claim.text} | {label(claim.metric)} "
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
                         f"{_format(claim.metric, second)} ({label(claim.metric)}) "
                         f"| {verdict} |")
    return "\n".join(lines)


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
