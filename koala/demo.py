"""`make demo`: colorize the photos that ship inside installed packages, offline.

Gray versions of scikit-image's astronaut, chelsea, coffee and rocket, scikit-learn's china
and flower and matplotlib's grace_hopper go through the default model; the result is
`demo/grid.png` (gray | Koala | original) and `demo/metrics.md` (model vs the gray baseline).
When the model takes colour hints, one more row shows what a few hints do: the photos named
in koala/demo_hints.json (a user's clicks, as `koala colorize --hints` reads them),
colorized automatically and with those hints (`demo/hints.png`).
"""

import argparse
import importlib.resources
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


def demo_hints():
    """{photo name: hints} of koala/demo_hints.json (file names as `koala colorize --hints`)."""
    from koala import hints as hints_lib

    text = (importlib.resources.files("koala") / "demo_hints.json").read_text("utf-8")
    return hints_lib.parse_json(text, "koala/demo_hints.json")


def measure(prediction, truth):
    from koala import color
    from koala.evaluation import metrics

    return {"psnr": metrics.psnr(prediction / 255.0, truth / 255.0),
            "auc": metrics.auc(color.rgb_to_lab_cv2(prediction)[..., 1:],
                               color.rgb_to_lab_cv2(truth)[..., 1:]),
            "colorfulness": metrics.colorfulness(prediction)}


def save_grid(rows, path, titles=("gray", "Koala", "original")):
    """One row per photo, one column per title: rows are (name, images)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = len(titles)
    figure, axes = plt.subplots(len(rows), columns, figsize=(3 * columns, 2.6 * len(rows)),
                                squeeze=False)
    for row_axes, (name, images) in zip(axes, rows):
        for axis, image, title in zip(row_axes, images, titles):
            axis.imshow(image)
            axis.set_axis_off()
            axis.set_title(f"{name}: {title}", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def marked(image, hints):
    """`image` with a ring drawn at each hint's centre (what the user clicked)."""
    import cv2

    out = image.copy()
    for hint in hints:
        centre = (int(round(hint["x"])), int(round(hint["y"])))
        cv2.circle(out, centre, 7, (255, 255, 255), 2)
        cv2.circle(out, centre, 9, (0, 0, 0), 1)
    return out


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
    if colorizer.takes_hints:
        lines += ["", "With colour hints (koala/demo_hints.json; `demo/hints.png`):", "",
                  "| photo | hints | PSNR automatic | PSNR with hints | colorfulness with "
                  "hints / true |", "|---|---|---|---|---|"]
        photos, hint_rows = packaged_photos(), []
        for file_name, hints in demo_hints().items():
            name = pathlib.Path(file_name).stem
            truth = photos[name]
            gray = gray_version(truth)
            automatic = colorizer.colorize_many([gray])[0]
            hinted = colorizer.colorize_many([gray], hints=[hints])[0]
            image_io.write_image(output / f"{name}_hints.png", hinted)
            hint_rows.append((name, (gray, automatic, marked(hinted, hints), truth)))
            auto, steered = measure(automatic, truth), measure(hinted, truth)
            ratio = steered["colorfulness"] / measure(truth, truth)["colorfulness"]
            lines.append(f"| {name} | {len(hints)} | {auto['psnr']:.2f} | {steered['psnr']:.2f} "
                         f"| {ratio:.2f} |")
        save_grid(hint_rows, output / "hints.png",
                  ("gray", "automatic", "with the hints (rings)", "original"))
    (output / "metrics.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwrote {output / 'grid.png'}, {output / 'metrics.md'} and {len(table)} colorized "
          f"photos in {time.time() - start:.1f} s ({colorizer.runtime.engine})")


if __name__ == "__main__":
    main()
