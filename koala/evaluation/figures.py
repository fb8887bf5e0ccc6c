"""Figures and the Markdown report of `koala evaluate` (kept apart: only it needs matplotlib).

- comparison.png: gray | model(s) | truth for the first photos;
- accuracy_curve.png: raw accuracy vs ab threshold 0..150 per method, AuC in the legend;
- ab_histograms.png: log density of predicted and true ab, which shows desaturation.
"""

import numpy as np

from koala.evaluation import metrics

TABLE_COLUMNS = [  # (key in metrics.json, header, format)
    ("ab_mse", "ab MSE", "{:.1f}"),
    ("psnr", "PSNR dB", "{:.2f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("raw_accuracy", "raw acc. %", "{:.1f}"),
    ("auc", "AuC %", "{:.2f}"),
    ("auc_rebalanced", "AuC rebal. %", "{:.2f}"),
    ("colorfulness", "colorfulness", "{:.1f}"),
    ("colorfulness_ratio", "vs truth", "{:.2f}"),
    ("top1_agreement", "top-1 agree %", "{:.1f}"),
    ("top1_accuracy_drop", "top-1 drop", "{:.1f}"),
]


def _pyplot():
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def comparison_grid(evaluation, path):
    plt = _pyplot()
    rows = evaluation.grid
    columns = ["gray", *evaluation.colorizers, "truth"]
    figure, axes = plt.subplots(len(rows), len(columns), squeeze=False,
                                figsize=(2.6 * len(columns), 2.2 * len(rows)))
    for r, (name, images) in enumerate(rows):
        for c, image in enumerate(images):
            axes[r][c].imshow(image)
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
            if r == 0:
                axes[r][c].set_title(columns[c], fontsize=9)
        axes[r][0].set_ylabel(name[-24:], fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def accuracy_curves(results, path):
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for method, values in results["methods"].items():
        axis.plot(metrics.CURVE_THRESHOLDS, values["accuracy_curve"],
                  label=f"{method} (AuC {values['auc']:.1f}%)")
    axis.set_xlabel("threshold: L2 distance in ab")
    axis.set_ylabel("% pixels within threshold")
    axis.set_xlim(0, metrics.AUC_MAX_THRESHOLD)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def ab_histograms(evaluation, path):
    plt = _pyplot()
    names = [n for n in evaluation.histograms if n != "gray"]
    figure, axes = plt.subplots(1, len(names), figsize=(3 * len(names), 3.2), squeeze=False)
    for axis, name in zip(axes[0], names):
        counts = evaluation.histograms[name].astype(np.float64)
        density = np.log10(1 + counts / max(counts.sum(), 1) * 1e6)
        axis.imshow(density.T, origin="lower", extent=(-128, 128, -128, 128), cmap="magma")
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("a")
        axis.set_ylabel("b")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def write_all(evaluation, results, output_dir):
    """Writes the three figures; returns {title: file name}."""
    figures = {"Comparison (gray | models | truth)": "comparison.png",
               "Accuracy vs threshold": "accuracy_curve.png",
               "ab histograms (log density)": "ab_histograms.png"}
    comparison_grid(evaluation, output_dir / figures["Comparison (gray | models | truth)"])
    accuracy_curves(results, output_dir / figures["Accuracy vs threshold"])
    ab_histograms(evaluation, output_dir / figures["ab histograms (log density)"])
    return figures


def markdown(results, figures):
    """report.md: the table of methods x metrics, definitions, figures."""
    threshold = results["threshold"]
    lines = [f"# Koala evaluation: {results['input']}", "",
             f"{results['images']} photos. Models: "
             + ", ".join(f"`{k}` ({v})" for k, v in results["models"].items()) + ".", "",
             "| method | " + " | ".join(h for _, h, _ in TABLE_COLUMNS) + " |",
             "|---" * (len(TABLE_COLUMNS) + 1) + "|"]
    for method, values in results["methods"].items():
        values = {**values, "raw_accuracy": values.get(f"raw_accuracy@{threshold:g}")}
        cells = [fmt.format(values[key]) if values.get(key) is not None else "-"
                 for key, _, fmt in TABLE_COLUMNS]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "- ab MSE in Lab units squared (seed 004); PSNR and SSIM on RGB in [0, 1].",
        f"- raw accuracy: % of pixels within {threshold:g} ab units (L2) of the truth (seed 003);"
        " AuC: that % integrated over thresholds 0..150 (Zhang et al.), and class-rebalanced"
        " (pixels weighted by 1 / prior of their true colour).",
        "- colorfulness: Hasler and Suesstrunk (2003); truth:"
        f" {results['truth_colorfulness']:.1f}.",
        "- baselines: gray (ab = 0); train mean ab ="
        f" {np.round(results['train_mean_ab'], 2).tolist()}"
        f" and the rebalancing prior, {results['train_stats']}.",
    ]
    if "semantic_skipped" in results:
        lines.append(f"- semantic interpretability skipped: {results['semantic_skipped']}.")
    else:
        lines.append("- top-1 agreement: % of photos where the ImageNet classifier"
                     f" ({results.get('classifier', 'ImageNet')}) gives the colorized photo"
                     " the class of the true one;"
                     " the drop is in top-1 accuracy when the folders name ImageNet classes.")
    study = results.get("reference_study")
    if study:
        key = f"raw_accuracy@{threshold:g}"
        lines.append(
            f"- reference-guided (seed 003), {study['pairs']} photos of {study['input']}, each"
            f" guided by another photo of its folder: raw accuracy {study['alone'][key]:.1f}%"
            f" -> {study['guided'][key]:.1f}%, AuC {study['alone']['auc']:.2f}"
            f" -> {study['guided']['auc']:.2f}.")
    lines.append("")
    for label, sweep in results.get("hint_sweep", {}).items():
        lines += hint_table(label, sweep)
    lines += [f"## {title}\n\n![{title}]({name})\n" for title, name in figures.items()]
    return "\n".join(lines)


def hint_table(label, sweep):
    """Markdown lines: PSNR / AuC / colourfulness by number of hints, beside Zhang 2017."""
    lines = [f"## Colour hints: `{label}`", "",
             f"{sweep['photos']} photos at {sweep['side']}x{sweep['side']}, "
             f"{sweep['hint_size']}x{sweep['hint_size']} hints of the true mean colour "
             f"(Zhang et al. 2017's protocol); gray: PSNR {sweep['gray']['psnr']:.2f} dB.", "",
             "| hints | PSNR dB | ± SE | AuC | colourfulness / truth | Zhang et al. 2017 |",
             "|---|---|---|---|---|---|"]
    for count, values in sweep["by_hints"].items():
        zhang = values.get("zhang_2017_psnr")
        lines.append(f"| {count} | {values['psnr']:.2f} | {values['psnr_se']:.2f} | "
                     f"{values['auc']:.2f} | {values['colorfulness_ratio']:.2f} | "
                     f"{'-' if zhang is None else f'{zhang:.2f}'} |")
    return lines + [""]
