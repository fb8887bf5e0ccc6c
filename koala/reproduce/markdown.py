"""REPORT.md: the header's verdict counts, the headline table, and one part per claim with
its measured means, its margin over the gray baseline, and each of the paper's claims
beside the paired difference over seeds and images."""

from koala.reproduce.verdict import AGREES, DISAGREES, INCONCLUSIVE, compare, difference, \
    mean, per_seed, verdict_counts

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


def results_table(section, baseline=None):
    """Methods x metrics, each cell the mean over the section's seeds and images; with a
    `baseline` method, a last column: each method's PSNR margin over it, ± 2 SE."""
    metrics = [m for m in METRIC_LABELS if any(m in v for v in section.methods.values())]
    margin = baseline in section.methods and "psnr" in section.methods[baseline]
    lines = ["| method | seeds × images | "
             + " | ".join(METRIC_LABELS[m][0] for m in metrics)
             + (f" | PSNR − {baseline} dB |" if margin else " |"),
             "|---|---:|" + "---:|" * (len(metrics) + margin)]
    for method, values in section.methods.items():
        seeds, images = per_seed(next(iter(values.values()))).shape
        cells = [_format(m, mean(values[m])) if m in values else "" for m in metrics]
        if margin:
            cells.append(_margin(values, section.methods[baseline], method == baseline))
        lines.append(f"| {method} | {seeds} × {images} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _margin(values, baseline, is_baseline):
    if is_baseline or "psnr" not in values:
        return ""
    measured = difference(values["psnr"], baseline["psnr"])
    return f"{measured.mean:+.2f} ± {2 * measured.standard_error:.2f}"


def claims_table(section):
    """Each claim beside what was measured, the paired difference and the verdict."""
    lines = ["| paper's claim | metric | measured | difference ± 2 SE | effect / SE "
             "| seeds with its sign | verdict |",
             "|---|---|---|---|---:|---:|---|"]
    for claim in section.claims:
        result = compare(section, claim)
        measured = (f"{claim.first} {_format(claim.metric, result.first)} vs "
                    f"{claim.second} {_format(claim.metric, result.second)}")
        ratio = (f"{result.mean / result.standard_error:+.1f}" if result.standard_error
                 else "—")
        lines.append(f"| {claim.text} | {label(claim.metric)} | {measured} "
                     f"| {result.mean:+.3g} ± {2 * result.standard_error:.2g} | {ratio} "
                     f"| {result.seeds_with_sign}/{len(result.seed_means)} "
                     f"| **{result.verdict}** |")
    return "\n".join(lines)


def headline_table(sections):
    """One row per claim over every section: the table a reader looks at first."""
    lines = ["| seed | paper's claim | measured | verdict |", "|---|---|---|---|"]
    for section in sections:
        for claim in section.claims:
            result = compare(section, claim)
            lines.append(f"| {section.key} | {claim.text} | {claim.first} "
                         f"{_format(claim.metric, result.first)} {claim.relation}? "
                         f"{claim.second} {_format(claim.metric, result.second)} "
                         f"({label(claim.metric)}) | {result.verdict} |")
    return "\n".join(lines)


def trained(section):
    """The section's models: its methods other than the baseline, the bounds and the truth."""
    return [m for m in section.methods
            if m not in (section.baseline, "truth", *section.bounds)]


def best_over_baseline(section):
    """(method, Difference of PSNR against the baseline) of the section's best PSNR."""
    baseline = section.methods[section.baseline]["psnr"]
    scored = [(m, difference(section.methods[m]["psnr"], baseline)) for m in trained(section)
              if "psnr" in section.methods[m]]
    return max(scored, key=lambda item: item[1].mean)


def margins_table(sections):
    """Per section, its best trained model's PSNR against the gray baseline's."""
    lines = ["| seed | best model (PSNR) | PSNR dB | baseline dB | margin ± 2 SE |",
             "|---|---|---:|---:|---:|"]
    for section in sections:
        if section.baseline not in section.methods:
            continue
        method, result = best_over_baseline(section)
        lines.append(f"| {section.key} | {method} | {result.first:.2f} | {result.second:.2f} "
                     f"| {result.mean:+.2f} ± {2 * result.standard_error:.2f} |")
    return "\n".join(lines)


def summary(sections, budget, date, hours):
    """The README's view of a report: what ran, the verdict counts, the headline and the
    margins tables (README.md shows it between readme.START and readme.END)."""
    return "\n".join([
        f"`koala report --budget {budget.name}` of {date}: {budget.seeds} training seeds per "
        f"model, {hours:.1f} h of training and measuring. {verdict_line(sections)}", "",
        headline_table(sections), "",
        "Each table's best trained model against leaving the photo gray (ab = 0), PSNR on "
        "the same held-out images, ± 2 standard errors over images and seeds:", "",
        margins_table(sections)])


def verdict_line(sections):
    counts = verdict_counts(sections)
    return (f"Verdicts: {counts[AGREES]} agree, {counts[DISAGREES]} disagree, "
            f"{counts[INCONCLUSIVE]} inconclusive at this budget.")


def markdown(sections, header):
    """The whole REPORT.md: header, headline table, then one part per section."""
    parts = [header.rstrip(), "", verdict_line(sections), "",
             "## Headline", "", headline_table(sections), "",
             "Do the models learn? Each table's best trained model against leaving the photo "
             "gray (ab = 0), on the same images:", "", margins_table(sections), ""]
    for section in sections:
        parts += [f"## {section.key}: {section.title}", "",
                  f"Wall time: {section.seconds:.0f} s.", "", section.setup.rstrip(), "",
                  "### Measured (means over the same seeds and images)", "", results_table(section, section.baseline), "",
                  "### Claims", "", claims_table(section), ""]
        if section.notes:
            parts += [section.notes.rstrip(), ""]
        for caption, name in section.figures:
            parts += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    return "\n".join(parts)
