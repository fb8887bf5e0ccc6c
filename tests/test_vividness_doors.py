"""`--vividness` reaches the model through every door: `koala colorize`, `koala evaluate` and
the study's colorized folder give what koala.colorize gives at that vividness, on the
shipped default model (which has the control) and real photos."""

import json
import subprocess
import sys

import numpy as np
import pytest

from koala import image_io, photo
from koala.inference import colorizer as colorizer_lib

PHOTO = "benchmark/kodak24/kodim23.png"


@pytest.fixture(scope="module")
def colorizer():
    loaded = colorizer_lib.Colorizer("default")
    if "vividness" not in loaded.bundle.meta:
        pytest.skip("the shipped model has no vividness control")
    return loaded


def _cli(*args):
    done = subprocess.run([sys.executable, "-m", "koala.cli", *args], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


def test_colorize_cli_applies_vividness(colorizer, shared_data, tmp_path):
    original = image_io.read_image(shared_data / PHOTO)
    outputs = {}
    for value in (0.0, 1.0):
        _cli("colorize", str(shared_data / PHOTO), "--output", str(tmp_path / str(value)),
             "--vividness", str(value))
        outputs[value] = image_io.read_image(tmp_path / str(value) / "kodim23.png")
        expected = colorizer_lib.colorize(original, colorizer, vividness=value)
        assert np.abs(outputs[value].astype(int) - expected).max() <= 1
    assert np.abs(outputs[0.0].astype(int) - outputs[1.0]).mean() > 2  # it changed colours


def test_evaluate_cli_measures_each_vividness(colorizer, shared_data, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("kodim23.png", "kodim03.png"):
        (folder / name).write_bytes((shared_data / "benchmark" / "kodak24" / name).read_bytes())
    _cli("evaluate", "--input", str(folder), "--output", str(tmp_path / "eval"), "--nosemantic",
         "--vividness", "0", "--vividness", "1")
    methods = json.loads((tmp_path / "eval" / "metrics.json").read_text())["methods"]
    assert methods["default@1"]["colorfulness"] > 1.3 * methods["default@0"]["colorfulness"]


def test_study_folder_is_colorized_at_its_vividness(colorizer, shared_data, tmp_path):
    from koala.study.catalog import colorize_folder

    real = tmp_path / "real"
    real.mkdir()
    (real / "kodim23.png").write_bytes((shared_data / PHOTO).read_bytes())
    colorize_folder(real, tmp_path / "vivid", "default", vividness=1.0)
    (made,) = sorted((tmp_path / "vivid").rglob("*.png"))
    rgb = image_io.read_image(shared_data / PHOTO)
    expected = colorizer_lib.colorize(photo.gray_version(rgb), colorizer, vividness=1.0)
    assert np.abs(image_io.read_image(made).astype(int) - expected).max() <= 1
