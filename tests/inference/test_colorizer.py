"""Full-resolution colorization: L kept exactly, odd shapes, depth, alpha, EXIF, files, CLI."""

import os
import pathlib
import subprocess
import sys

import cv2
import numpy as np
import pytest
from colorize_helpers import tiny_bundle, tiny_colorizer  # noqa: F401 (fixtures)
from PIL import Image
from skimage import color as skcolor

from koala import image_io, photo
from koala.inference import colorizer as colorizer_lib
from koala.evaluation import metrics

REPO = pathlib.Path(__file__).resolve().parents[2]  # the checkout: tests/inference/ is 2 down


def lightness_of_output(rgb):
    """L of an output image by skimage (independent of the code under test)."""
    top = np.iinfo(rgb.dtype).max
    return skcolor.rgb2lab(rgb[..., :3].astype(np.float64) / top)[..., 0]


def textured(shape, seed=0, dtype=np.uint8):
    rng = np.random.default_rng(seed)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


@pytest.mark.parametrize("shape", [(7, 1001), (1001, 5), (1, 1), (33, 65, 3), (2, 3000, 3)])
def test_output_keeps_the_input_lightness(tiny_colorizer, shape):  # noqa: F811
    image = textured(shape)
    out = colorizer_lib.colorize(image, tiny_colorizer)
    assert out.shape == shape[:2] + (3,) and out.dtype == np.uint8
    expected = skcolor.rgb2lab(np.dstack([image] * 3) / 255.0 if image.ndim == 2
                               else image / 255.0)[..., 0]
    # 8-bit rounding of each channel moves L by at most ~0.3; clipping would move it by tens
    assert np.abs(lightness_of_output(out) - expected).max() < 0.5
    assert photo.has_colour(out), "the tiny model's bias should give visible colour"


def test_saturated_predictions_are_pulled_into_gamut_without_changing_lightness():
    lightness = np.array([[2.0, 50.0, 97.0, 30.0]], np.float32)
    ab = np.array([[[100.0, 100.0], [-120.0, 120.0], [90.0, -110.0], [127.0, -128.0]]])
    out = photo.recombine(lightness, ab.astype(np.float32))
    assert np.abs(lightness_of_output(out) - lightness).max() < 0.5


def test_sixteen_bit_input_gives_sixteen_bit_output(tiny_colorizer):  # noqa: F811
    image = textured((21, 17), dtype=np.uint16)
    out = colorizer_lib.colorize(image, tiny_colorizer)
    assert out.dtype == np.uint16
    expected = skcolor.rgb2lab(np.dstack([image] * 3) / 65535.0)[..., 0]
    assert np.abs(lightness_of_output(out) - expected).max() < 0.01


def test_alpha_is_kept(tiny_colorizer, tmp_path):  # noqa: F811
    rgba = np.dstack([textured((20, 30, 3)), textured((20, 30), seed=1)])
    out = colorizer_lib.colorize(rgba, tiny_colorizer)
    assert out.shape == (20, 30, 4) and np.array_equal(out[..., 3], rgba[..., 3])
    image_io.write_image(tmp_path / "a.png", out)
    assert np.array_equal(image_io.read_image(tmp_path / "a.png"), out)


def test_exif_orientation_is_honoured(tmp_path):
    image = Image.fromarray(textured((20, 40, 3)))
    exif = Image.Exif()
    for orientation in range(1, 9):
        exif[0x0112] = orientation
        path = tmp_path / f"o{orientation}.jpg"
        image.save(path, exif=exif.tobytes(), quality=95)
        from PIL import ImageOps

        with Image.open(path) as stored:
            expected = np.asarray(ImageOps.exif_transpose(stored).convert("RGB"))
        assert np.array_equal(image_io.read_image(path), expected), orientation


def test_keep_color_leaves_colour_photos_alone(tiny_colorizer):  # noqa: F811
    photo = np.zeros((16, 16, 3), np.uint8)
    photo[..., 0] = 200  # clearly red
    assert np.array_equal(colorizer_lib.colorize(photo, tiny_colorizer, keep_color=True), photo)
    gray = np.dstack([textured((16, 16))] * 3)
    assert not np.array_equal(colorizer_lib.colorize(gray, tiny_colorizer, keep_color=True), gray)


def test_working_shape_keeps_aspect_and_stride():
    assert photo.working_shape(3000, 4000, 224, 32) == (192, 256)
    assert photo.working_shape(1, 100000, 224, 32) == (32, 896)  # capped at 4 * size
    height, width = photo.working_shape(481, 321, 160, 32)
    assert height % 32 == 0 and width % 32 == 0 and height > width


def test_plan_outputs_never_targets_an_input_or_clobbers(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "b.jpg").write_bytes(b"x")
    (tmp_path / "b.png").write_bytes(b"old output")
    found, unmatched = image_io.find_inputs([tmp_path, tmp_path / "missing*.jpg"])
    assert unmatched == [str(tmp_path / "missing*.jpg")]
    for overwrite in (False, True):
        pairs = dict(image_io.plan_outputs(found, tmp_path, ".png", overwrite))
        inputs = {tmp_path / "a.png", tmp_path / "b.jpg", tmp_path / "b.png"}
        assert not inputs & set(pairs.values())
        assert len(set(pairs.values())) == len(pairs)
        assert pairs[tmp_path / "a.png"].name == "a-1.png"


def test_reference_from_the_true_photo_raises_raw_accuracy(tiny_colorizer):  # noqa: F811
    y, x = np.mgrid[0:48, 0:64]
    truth = np.stack([120 + 100 * (x < 32), 60 + 2 * y, 200 - 100 * (y > 24)], -1)
    truth = np.clip(truth + textured((48, 64, 1)) // 8, 0, 255).astype(np.uint8)
    true_ab = cv2.cvtColor(truth.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[..., 1:]

    def scores(out):
        ab = cv2.cvtColor(out.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[..., 1:]
        return metrics.raw_accuracy(ab, true_ab, 20.0), metrics.auc(ab, true_ab)

    alone = scores(colorizer_lib.colorize(truth, tiny_colorizer))
    guided = scores(colorizer_lib.colorize(truth, tiny_colorizer, reference=truth))
    # the blend keeps up to 20% of the (badly biased) model, so not 100%; measured 8 -> 51
    assert guided[0] > alone[0] + 20 and guided[1] > alone[1] + 10


def test_cli_reports_bad_file_finishes_others_and_fails(tiny_bundle, tmp_path):  # noqa: F811
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("one.png", "two.jpg"):
        image_io.write_image(inputs / name, np.dstack([textured((24, 40), seed=3)] * 3))
    (inputs / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "one.png").write_bytes(b"an earlier result")
    command = [sys.executable, "-m", "koala.cli", "colorize", str(inputs), "--output",
               str(tmp_path / "out"), "--model", str(tiny_bundle), "--batch_size", "2"]
    assert (REPO / "koala" / "cli.py").is_file()  # `-m koala.cli` runs the checkout's CLI
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                                 "PYTHONPATH": str(REPO)})
    assert result.returncode == 1
    assert "broken.jpg" in result.stderr
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert outputs == ["one-1.png", "one.png", "two.png"]
    assert (tmp_path / "out" / "one.png").read_bytes() == b"an earlier result"
    assert image_io.read_image(tmp_path / "out" / "two.png").shape == (24, 40, 3)


def test_pad_fit_keeps_lightness_and_shape(tiny_bundle):  # noqa: F811
    from koala.bundle import keras_bundle

    loaded = keras_bundle.load(str(tiny_bundle))
    loaded.meta["fit"] = "pad"  # as a model trained on white-padded squares (Koalarization)
    colorizer = colorizer_lib.Colorizer(loaded, size=32)
    image = textured((15, 70))
    out = colorizer_lib.colorize(image, colorizer)
    assert out.shape == (15, 70, 3)
    expected = skcolor.rgb2lab(np.dstack([image] * 3) / 255.0)[..., 0]
    assert np.abs(lightness_of_output(out) - expected).max() < 0.5
