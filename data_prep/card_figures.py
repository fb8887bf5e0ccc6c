"""Redraws MODEL_CARD.md's two pictures with the shipped default model.

    python data_prep/card_figures.py [--data ../shared/data]

docs/demo_grid.jpg: `make demo`'s grid (gray | Koala | original on the packaged photos);
docs/historical.jpg: the first 12 photos of data/historical colorized, packed in rows.
With --hint_sweep METRICS (a `koala evaluate --hints ...` metrics.json): docs/hints.png,
PSNR against the number of colour hints beside Zhang et al. 2017's curve.
"""

import argparse
import pathlib
import tempfile

import cv2
import numpy as np

from koala import demo, image_io
from koala.inference import colorizer as colorizer_lib

REPO = pathlib.Path(__file__).resolve().parents[1]
ROW_HEIGHT, PAGE_WIDTH, HISTORICAL = 220, 1030, 12


def packed_rows(images):
    """Images scaled to ROW_HEIGHT, laid left to right; a new row when less than half of
    the next image would fit in PAGE_WIDTH (a row's last image may be cropped)."""
    rows, row, width = [], [], 0
    for image in images:
        scaled = cv2.resize(image, (round(image.shape[1] * ROW_HEIGHT / image.shape[0]),
                                    ROW_HEIGHT), interpolation=cv2.INTER_AREA)
        if row and width + scaled.shape[1] // 2 > PAGE_WIDTH:
            rows.append(row)
            row, width = [], 0
        row.append(scaled)
        width += scaled.shape[1]
    rows.append(row)
    page = np.full((ROW_HEIGHT * len(rows), PAGE_WIDTH, 3), 255, np.uint8)
    for index, row in enumerate(rows):
        strip = np.concatenate(row, axis=1)[:, :PAGE_WIDTH]
        page[index * ROW_HEIGHT:(index + 1) * ROW_HEIGHT, :strip.shape[1]] = strip
    return page


def hint_figure(metrics_path, target):
    """PSNR by number of hints (log-spaced axis, 0 at the left) for each swept model and
    Zhang et al. 2017, with the gray baseline."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from koala.evaluation import hint_sweep

    results = json.loads(pathlib.Path(metrics_path).read_text())
    figure, axis = plt.subplots(figsize=(6, 4))
    position = lambda n: 0.5 if int(n) == 0 else int(n)  # noqa: E731 (0 on a log axis)
    zhang = hint_sweep.ZHANG_2017_PSNR
    axis.plot([position(n) for n in zhang], list(zhang.values()), "s--", color="gray",
              label="Zhang et al. 2017 (ImageNet val, 1000 photos)")
    for label, sweep in results["hint_sweep"].items():
        counts = list(sweep["by_hints"])
        axis.errorbar([position(n) for n in counts],
                      [sweep["by_hints"][n]["psnr"] for n in counts],
                      yerr=[sweep["by_hints"][n]["psnr_se"] for n in counts], marker="o",
                      label=f"Koala {label} ({sweep['photos']} photos/val)")
        axis.axhline(sweep["gray"]["psnr"], color="black", lw=0.8, ls=":", label="gray (ab = 0)")
    axis.set_xscale("log")
    ticks = [0, 1, 2, 5, 10, 20, 50, 100]
    axis.set_xticks([position(n) for n in ticks], [str(n) for n in ticks])
    axis.set_xlabel("colour hints (6x6 squares of the true mean colour)")
    axis.set_ylabel("PSNR (dB), 256x256")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(target, dpi=100)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--hint_sweep", default=None, help="metrics.json of koala evaluate --hints")
    args = parser.parse_args()
    if args.hint_sweep:
        hint_figure(args.hint_sweep, REPO / "docs" / "hints.png")
        print("wrote docs/hints.png")
        return
    with tempfile.TemporaryDirectory() as folder:
        demo.main(["--output", folder])
        grid = image_io.read_image(pathlib.Path(folder, "grid.png"))
    small = cv2.resize(grid, (576, round(grid.shape[0] * 576 / grid.shape[1])),
                       interpolation=cv2.INTER_AREA)
    image_io.write_image(REPO / "docs" / "demo_grid.jpg", small)
    colorizer = colorizer_lib.Colorizer("default")
    paths = sorted(pathlib.Path(args.data, "historical").glob("*.jpg"))[:HISTORICAL]
    colorized = colorizer.colorize_many([image_io.read_image(p) for p in paths])
    image_io.write_image(REPO / "docs" / "historical.jpg", packed_rows(colorized))
    print(f"wrote docs/demo_grid.jpg and docs/historical.jpg ({len(paths)} historical photos)")


if __name__ == "__main__":
    main()
