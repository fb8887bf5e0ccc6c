"""`make demo`: colorize the photos that ship inside installed packages, offline.

Gray versions of scikit-image's astronaut, chelsea, coffee and rocket, scikit-learn's china
and flower and matplotlib's grace_hopper go through the default model; the result is
`demo/grid.png` (gray | Koala | original) and `demo/metrics.md` (model vs the gray baseline).
"""

import argparse
import pathlib
import time

import numpy as np

from koala.photo import gray_version


def packaged_photos():
    """name -> RGB uint8 of every demo photo that ships inside an installed package."""
    import matplotlib.cbook
    import matplotlib.image
    import skimage.data
    import sklearn.datasets

    photos = {name: getattr(skimage.data, name)() for name in
              ("astronaut", "chelsea", "coffee", "rocket")}
    photos.update(zip(("china", "flower"), sklearn.datasets.load_sample_images().images))
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        photos["grace_hopper"] = np.asarray(matplotlib.image.imread(handle, format="jpg"))
    return photos


def measure(prediction, truth):
    from koala import color
    from koala.evaluation import metrics

    return {"psnr": metrics.psnr(prediction / 255.0, truth / 255.0),
            "auc": metrics.auc(color.rgb_to_lab_cv2(prediction)[..., 1:],
                               color.rgb_to_lab_cv2(truth)[..., 1:]),
            "colorfulness": metrics.colorfulness(prediction)}


def save_grid(rows, path):
    """One row per photo: gray | Koala | original."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(rows), 3, figsize=(9, 2.6 * len(rows)))
    for row_axes, (name, images) in zip(axes, rows):
        for axis, image, title in zip(row_axes, images, ("gray", "Koala", "original")):
            axis.imshow(image)
            axis.set_axis_off()
            axis.set_title(f"{name}: {title}", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def main(argv=None):
    """Module flags are argparse, not absl: tests import this module beside koala commands."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="demo", help="folder for grid.png, metrics.md, photos")
    parser.add_argument("--model", default="default", help="model name or bundle path")
    args = parser.parse_args(argv)
    from koala import image_io
    from koala.inference import colorizer as colorizer_lib

    output = pathlib.Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    start = time.time()
    colorizer = colorizer_lib.Colorizer(args.model)
    rows, table = [], []
    for name, truth in packaged_photos().items():
        gray = gray_version(truth)
        koala = colorizer.colorize_many([gray])[0]
        image_io.write_image(output / f"{name}.png", koala)
        rows.append((name, (gray, koala, truth)))
        table.append((name, measure(gray, truth), measure(koala, truth),
                      measure(truth, truth)["colorfulness"]))
    save_grid(rows, output / "grid.png")
    lines = ["| photo | PSNR gray | PSNR Koala | AuC gray | AuC Koala | colorfulness Koala / true |",
             "|---|---|---|---|---|---|"]
    for name, gray, koala, true_colorfulness in table:
        lines.append(f"| {name} | {gray['psnr']:.2f} | {koala['psnr']:.2f} | {gray['auc']:.2f} "
                     f"| {koala['auc']:.2f} | {koala['colorfulness'] / true_colorfulness:.2f} |")
    mean = {key: np.mean([[g[key], k[key]] for _, g, k, _ in table], 0)
            for key in ("psnr", "auc")}
    ratio = np.mean([k["colorfulness"] for _, _, k, _ in table]) / np.mean([t for *_, t in table])
    lines.append(f"| **mean** | {mean['psnr'][0]:.2f} | {mean['psnr'][1]:.2f} | "
                 f"{mean['auc'][0]:.2f} | {mean['auc'][1]:.2f} | {ratio:.2f} |")
    (output / "metrics.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwrote {output / 'grid.png'}, {output / 'metrics.md'} and {len(table)} colorized "
          f"photos in {time.time() - start:.1f} s ({colorizer.runtime.engine})")


if __name__ == "__main__":
    main()
