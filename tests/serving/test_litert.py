"""Colorizing through LiteRT: no TensorFlow in the process, the Keras path's pixels, any shape.

The .tflite files here are what `koala export --format tflite` writes (koala.serving.tflite), run by
koala.inference.runtime exactly as `koala colorize` runs them.
"""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from colorize_helpers import save_tiny_bundle, seeded_conv

from koala import image_io, vividness
from koala.inference import colorizer as colorizer_lib
from koala import photo as photo_lib
from koala.bundle import files
from koala.inference import png, runtime

REPO = pathlib.Path(__file__).resolve().parents[2]
BENCHMARK_PHOTOS = ("kodak24/kodim03.png", "kodak24/kodim20.png", "bsds500_val/101085.jpg",
                    "bsds500_val/103070.jpg")  # landscape and portrait: two working shapes


@pytest.fixture(scope="module")
def lite_bundle(tmp_path_factory, sample_photos):
    """A tiny bundle fitted on real photos, with the model.tflite that export adds."""
    from koala.bundle import keras_bundle
    from koala.serving import tflite

    photos = sample_photos(32)
    path = save_tiny_bundle(tmp_path_factory.mktemp("lite_bundle"), photos)
    info = tflite.add_tflite_to_bundle(keras_bundle.load(path), parity_photos=photos[:4])
    return path, info, photos


def test_export_adds_a_current_tflite_with_parity(lite_bundle):
    path, info, _ = lite_bundle
    assert (path / files.TFLITE_FILE).stat().st_size == info["bytes"] > 0
    assert info["keras_sha256"] == files.file_sha256(path / files.KERAS_FILE)
    assert info["parity_vs_keras"]["photos"] == 4
    assert info["parity_vs_keras"]["max_level_diff"] <= 1
    assert files.tflite_is_current(path)


def test_a_fresh_process_colorizes_a_real_photo_without_tensorflow(lite_bundle, tmp_path):
    path, _, photos = lite_bundle
    script = f"""
import json, sys
import koala
from koala import cli
out = koala.colorize({str(photos[0])!r}, model={str(path)!r})
try:
    cli.run(["koala", "colorize", {str(photos[1])!r}, "--output", {str(tmp_path)!r},
             "--model", {str(path)!r}])
except SystemExit as done:
    assert not done.code, done.code
print(json.dumps({{"shape": out.shape, "tensorflow": "tensorflow" in sys.modules,
                  "keras": "keras" in sys.modules}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"shape": list(image_io.read_image(photos[0]).shape[:2]) + [3],
                      "tensorflow": False, "keras": False}
    assert "LiteRT" in result.stderr
    written = image_io.read_image(tmp_path / (photos[1].stem + ".png"))
    assert written.shape == image_io.read_image(photos[1]).shape[:2] + (3,)


def test_litert_and_keras_agree_on_photos_of_any_shape(lite_bundle):
    path, _, photos = lite_bundle
    lite, keras = colorizer_lib.Colorizer(path), colorizer_lib.Colorizer(path, engine="keras")
    assert (lite.runtime.engine, keras.runtime.engine) == ("LiteRT", "Keras")
    for photo in photos[:6]:
        image = image_io.read_image(photo)
        for crop in (image, image[: image.shape[0] // 2 + 7, 3:]):  # new shapes: resized
            difference = np.abs(colorizer_lib.colorize(crop, lite).astype(int)
                                - colorizer_lib.colorize(crop, keras))
            assert difference.max() <= 1, photo


def test_retrained_bundle_runs_keras_until_exported_again(tmp_path, sample_photos, caplog):
    from koala.bundle import keras_bundle
    from koala.serving import tflite

    path = save_tiny_bundle(tmp_path / "b", sample_photos(8))
    tflite.add_tflite_to_bundle(keras_bundle.load(path), parity_photos=sample_photos(1))
    assert colorizer_lib.Colorizer(path).runtime.engine == "LiteRT"
    retrained = keras_bundle.load(path)
    retrained.model.get_layer("ab").bias.assign([-0.3, 0.2])
    keras_bundle.save(path, retrained.model, retrained.meta)  # model.keras changes, .tflite stays
    with caplog.at_level("INFO", logger="absl"):  # whatever verbosity an earlier test left
        assert colorizer_lib.Colorizer(path).runtime.engine == "Keras"
    assert "Keras/TensorFlow" in caplog.text and "koala export --format tflite" in caplog.text
    tflite.add_tflite_to_bundle(keras_bundle.load(path), parity_photos=sample_photos(1))
    assert colorizer_lib.Colorizer(path).runtime.engine == "LiteRT"


def vivid_tiny_bundle(directory):
    """A tiny model with the vividness control's three outputs (koala.vividness)."""
    import keras

    from koala.bundle import keras_bundle

    lightness = keras.Input([None, None, 1], name="L")
    accurate = seeded_conv(2, "accurate", seed=4)(lightness)
    vivid = seeded_conv(2, "vivid", seed=5, bias=(0.4, -0.3))(lightness)
    mixed = keras.layers.Add()([accurate, keras.layers.Rescaling(0.3)(
        keras.layers.Subtract()([vivid, accurate]))])
    model = keras.Model({"L": lightness}, {"ab": mixed, vividness.ACCURATE: accurate,
                                           vividness.VIVID: vivid})
    return keras_bundle.save(directory, model, {"model": "tiny_vivid", "size": 64,
                                                "output": "regression", "stride": 1,
                                                "vividness": 0.3})


def test_litert_carries_the_vividness_control(tmp_path, sample_photos):
    from koala.bundle import keras_bundle
    from koala.serving import tflite

    path = vivid_tiny_bundle(tmp_path / "vivid")
    tflite.add_tflite_to_bundle(keras_bundle.load(path), parity_photos=sample_photos(2))
    lite, keras = colorizer_lib.Colorizer(path), colorizer_lib.Colorizer(path, engine="keras")
    assert lite.runtime.engine == "LiteRT"
    photo = photo_lib.split(image_io.read_image(sample_photos(1)[0]))
    small = lite.small_lightness(photo.lightness)[0][None, ..., None]
    for value in (None, 0.0, 0.6, 1.0):
        np.testing.assert_allclose(lite.model_ab(small, value), keras.model_ab(small, value),
                                   atol=1e-3)
    assert np.abs(lite.model_ab(small, 1.0) - lite.model_ab(small, 0.0)).mean() > 1.0
    np.testing.assert_allclose(lite.model_ab(small), lite.model_ab(small, 0.3), atol=1e-4)


def test_litert_engine_without_a_tflite_names_the_fix(tmp_path):
    path = save_tiny_bundle(tmp_path / "plain")
    with pytest.raises(FileNotFoundError, match="koala export --format tflite"):
        colorizer_lib.Colorizer(path, engine="litert")


def test_default_model_litert_matches_keras_on_benchmark_photos(shared_data, tmp_path,
                                                                 monkeypatch):
    """The shipped model, converted once into a fresh cache, vs Keras within 1 level."""
    monkeypatch.setenv("KOALA_CACHE", str(tmp_path / "cache"))
    lite = colorizer_lib.Colorizer("default")
    assert lite.runtime.engine == "LiteRT"
    (copy,) = (tmp_path / "cache" / "tflite").glob("*.tflite")
    assert 15e6 < copy.stat().st_size < 20e6  # README: float32, 19.4 MB, so not shipped
    keras = colorizer_lib.Colorizer("default", engine="keras")
    for name in BENCHMARK_PHOTOS:
        image = image_io.read_image(shared_data / "benchmark" / name)
        difference = np.abs(colorizer_lib.colorize(image, lite).astype(int)
                            - colorizer_lib.colorize(image, keras))
        assert difference.max() <= 1, name


@pytest.mark.parametrize("shape, dtype", [((31, 17, 3), np.uint8), ((9, 5, 4), np.uint16),
                                          ((1, 1), np.uint8), ((40, 3, 2), np.uint8)])
def test_band_png_encoder_round_trips(shape, dtype, tmp_path, monkeypatch):
    monkeypatch.setattr(png, "BAND_BYTES", 64)  # many bands even for small images
    image = np.random.default_rng(0).integers(0, np.iinfo(dtype).max, shape, dtype,
                                              endpoint=True)
    png.write(tmp_path / "x.png", image)
    if dtype == np.uint8:  # Pillow reads gray+alpha as such (OpenCV makes it BGRA)
        from PIL import Image

        decoded = np.asarray(Image.open(tmp_path / "x.png"))
    else:
        decoded = image_io.read_image(tmp_path / "x.png")
    assert np.array_equal(decoded.reshape(shape), image)


def test_band_png_encoder_writes_a_real_colorized_photo(lite_bundle, tmp_path):
    path, _, photos = lite_bundle
    out = colorizer_lib.colorize(photos[2], model=path)
    png.write(tmp_path / "c.png", out)
    assert np.array_equal(image_io.read_image(tmp_path / "c.png"), out)
    with pytest.raises(ValueError, match="cannot write a PNG"):
        png.encode(out.astype(np.float32))
