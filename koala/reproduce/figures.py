"""The report's PNGs: image grids and metric-against-parameter sweeps (matplotlib, Agg)."""

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
