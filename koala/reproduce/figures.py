"""The report's PNGs: image grids, metric-against-parameter sweeps and learning curves
(matplotlib, Agg)."""

from koala.reproduce.markdown import label
from koala.reproduce.verdict import mean


def _pyplot():
    import matplotlib  # noqa: PLC0415 (only when figures are written)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def save_image_grid(columns, path, rows=4):
    """columns: {title: [uint8 RGB image, ...]} (same length) -> one PNG file at `path`,
    rows x columns (the report's figure; the loop's TensorBoard rows are
    koala.training.validation.tensorboard_grid)."""
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


def sweep_plot(measured, methods, xs, xlabel, metrics, path):
    """Means of `metrics` over `methods` (one x value each) of `measured` ({method:
    {metric: per-image values}}), one panel per metric."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(metrics), squeeze=False, figsize=(3.2 * len(metrics), 2.8))
    for axis, metric in zip(axes[0], metrics):
        axis.plot(xs, [mean(measured[m][metric]) for m in methods], marker="o")
        axis.set_xlabel(xlabel)
        axis.set_title(label(metric), fontsize=9)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


# A claim metric the training loop does not log, and the logged one its curve shows: chroma
# SE is MSE times a constant.
CURVE_FOR = {"chroma_se": "mse"}


def curve_metrics(claims, curves):
    """The logged metrics to plot for `claims`: theirs where the loop logs it, and PSNR
    (does the model learn at all?) first."""
    logged = {key for runs in curves.values() for rows in runs for row in rows for key in row}
    wanted = ["psnr"] + [CURVE_FOR.get(c.metric, c.metric) for c in claims]
    return [m for m in dict.fromkeys(wanted) if m in logged]


def learning_curves(curves, metrics, path, baseline=None):
    """curves: {method: [val rows of one seed, ...]} -> one panel per metric, a thin line
    per seed and a thick one for the seeds' mean; `baseline` {metric: value} dashed."""
    import numpy as np  # noqa: PLC0415

    plt = _pyplot()
    figure, axes = plt.subplots(1, len(metrics), squeeze=False,
                                figsize=(3.4 * len(metrics), 2.9))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, metric in zip(axes[0], metrics):
        for index, (method, seeds) in enumerate(curves.items()):
            colour = colours[index % len(colours)]
            lines = [([r["step"] for r in rows if metric in r], [r[metric] for r in rows
                                                                 if metric in r])
                     for rows in seeds]
            for steps, values in lines:
                axis.plot(steps, values, color=colour, alpha=0.35, linewidth=0.8)
            length = min(len(steps) for steps, _ in lines)
            if length:
                axis.plot(lines[0][0][:length],
                          np.mean([values[:length] for _, values in lines], axis=0),
                          color=colour, linewidth=2, label=method)
        if baseline and metric in baseline:
            axis.axhline(baseline[metric], color="gray", linestyle="--", label="gray")
        axis.set_xlabel("training step")
        axis.set_title(label(metric), fontsize=9)
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
