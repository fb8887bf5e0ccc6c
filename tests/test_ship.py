"""`koala ship` on what a real `koala train --experiment default:tiny` leaves (an automatic
model and a hint model): the selection on validation photos, the bundle it writes, and that
this bundle colorizes exactly as the selection chose, at each end of the vividness control
and at its default."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from koala import image_io, photo
from koala.bundle import keras_bundle
from koala.data import prior as prior_lib
from koala.inference.colorizer import Colorizer
from koala.shipping import release, selection

from colorize_helpers import tiny_bundle  # noqa: F401 (fixture)

REPO = pathlib.Path(__file__).resolve().parents[1]
SIZE = 64  # default:tiny's working size


def koala(*args, cwd):
    """`koala VERB ...` in a fresh process -> its stdout; fails the test on a non-zero exit."""
    result = subprocess.run([sys.executable, "-m", "koala.cli", *map(str, args)], cwd=cwd,
                            capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                                     PYTHONPATH=str(REPO)))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def val_photos(sample_photos, tmp_path_factory):
    """Five real photos of photos/val, three of them Imagenette's (the 256 protocol's)."""
    folder = tmp_path_factory.mktemp("val")
    imagenette = [p for p in sample_photos(40) if "imagenette" in str(p)][:3]
    others = [p for p in sample_photos(40) if "imagenette" not in str(p)][:2]
    assert len(imagenette) == 3 and len(others) == 2
    for index, path in enumerate(imagenette + others):
        target = folder / ("imagenette" if index < 3 else "scenes") / f"{index}.jpg"
        target.parent.mkdir(exist_ok=True)
        shutil.copy(path, target)
    return folder


# The hint model by default (it takes the longer path: no hints for the selection, its hint
# input kept in the shipped bundle); the automatic one, what v1-v3 are, under -m slow.
@pytest.fixture(scope="module", params=[pytest.param("automatic", marks=pytest.mark.slow),
                                        "hints"])
def run(request, val_photos, tmp_path_factory):
    """(workdir, whether it is a hint model) of a 2-step `koala train --experiment
    default:tiny` on the five photos (training and validation alike)."""
    workdir = tmp_path_factory.mktemp(request.param) / "run"
    hints = request.param == "hints"
    koala("train", "--experiment", "default:tiny", "--workdir", workdir,
          f"--config.data.train_photos={val_photos}", f"--config.data.val_photos={val_photos}",
          "--config.train.steps=2",
          *(["--config.model.kwargs.hints=True", "--config.data.hints=True"] if hints else []),
          cwd=workdir.parent)
    return workdir, hints


def test_ship_selects_on_validation_photos_and_writes_a_bundle_that_decodes_as_chosen(
        run, val_photos, tmp_path):
    workdir, hints = run
    figure = tmp_path / "vividness.png"
    printed = json.loads(koala("ship", "--model", workdir, "--output", tmp_path / "shipped",
                               "--limit", 5, "--sizes", SIZE, "--figure", figure,
                               cwd=tmp_path).splitlines()[-1])
    shipped = tmp_path / "shipped"
    assert printed["bundle"] == str(shipped)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    report = json.loads((shipped / "selection.json").read_text())
    assert report["photos"] == 5 and report["imagenet_256"]["photos"] == 3
    assert report["val_photos"] == report["train_data"] == str(val_photos)  # the run's own
    candidates = report["candidates"]
    assert len(candidates) == len(list(selection.decodings()))  # one size
    assert [c["score"] for c in candidates] == sorted((c["score"] for c in candidates),
                                                      reverse=True)
    knobs = {role: tuple(report[role][k] for k in selection.KNOBS) for role in selection.ROLES}
    assert knobs["accurate"] == tuple(candidates[0][k] for k in selection.KNOBS)
    most = max(c["colorfulness_ratio"] for c in candidates)  # vivid: 1.15x, else the most
    assert report["vivid"]["colorfulness_ratio"] >= min(most, selection.COLORFULNESS_RANGE[1])

    meta = json.loads((shipped / "koala.json").read_text())
    assert {k: meta[k] for k in ("model", "name", "size", "stride", "fit", "output")} == {
        "model": "effnet_unet", "name": "default", "size": SIZE, "stride": 32, "fit": "aspect",
        "output": "regression"}
    assert meta["hints"] is hints and meta["config"]["hints"] is hints
    assert meta["vividness"] == printed["default_vividness"] == report["default_vividness"]
    assert meta["decoding"] == {role: {k: report[role][k] for k in release.DECODING}
                                for role in selection.ROLES}
    assert [(r["run"], r["steps"]) for r in meta["training_runs"]] == [(1, 2)]
    logged = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    kept = [json.loads(line) for line in (shipped / "training_log.jsonl").read_text().splitlines()]
    assert kept == [dict(line, run=1) for line in logged if line["split"] != "train"]

    # the bundle colorizes as the selection decoded: each anchor, through `koala colorize`'s
    # path, equals the chosen knobs applied to the trained heads
    loaded = keras_bundle.load(shipped)
    assert keras_bundle.input_names(loaded.model) == (["L", "hints"] if hints else ["L"])
    heads_of = Colorizer(release.load_trained(workdir).bundle, SIZE)
    bias = selection.prior_bias(prior_lib.ab_prior(val_photos))
    colorizer = Colorizer(loaded, engine="keras")
    rgb = image_io.read_image(sorted(val_photos.rglob("*.jpg"))[0])
    heads = selection.PhotoHeads(heads_of, rgb)
    for role, vividness in (("accurate", 0.0), ("default", None), ("vivid", 1.0)):
        chosen = photo.recombine(heads.photo.lightness, heads.decode(*knobs[role][1:], bias))
        got = colorizer.colorize_many([rgb], vividness=vividness)[0]
        difference = np.abs(got.astype(int) - chosen.astype(int))
        assert difference.max() <= 1 and difference.mean() < 0.05, role  # float32 rounding

    if not hints:
        return
    # a bundle without its run (here the shipped blend itself, a hint model's: it wraps the
    # trained model) ships again, with its own history (once: the same code for both kinds)
    again = tmp_path / "again"
    koala("ship", "--model", shipped, "--output", again, "--limit", 5, "--sizes", SIZE,
          "--val_photos", val_photos, "--train_photos", val_photos, cwd=tmp_path)
    assert (again / "training_log.jsonl").read_text() == \
        (shipped / "training_log.jsonl").read_text()
    assert json.loads((again / "koala.json").read_text())["decoding"] == meta["decoding"]


def test_a_model_without_the_two_heads_is_not_shippable(tiny_bundle):  # noqa: F811
    with pytest.raises(release.NotShippable, match="not a two-head effnet_unet"):
        release.load_trained(tiny_bundle)
