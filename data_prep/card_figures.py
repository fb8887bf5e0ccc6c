"""Redraws MODEL_CARD.md's two pictures with the shipped default model.

    python data_prep/card_figures.py [--data ../shared/data]

docs/demo_grid.jpg: `make demo`'s grid (gray | Koala | original on the packaged photos);
docs/historical.jpg: the first 12 photos of data/historical colorized, packed in rows.
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args()
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
