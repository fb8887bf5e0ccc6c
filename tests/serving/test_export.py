"""koala export: SavedModel signatures, saved_model_cli in a fresh process, pixel parity
with the in-process colorize path, bad bytes, TFLite parity and built-ins only.

Every test uses a tiny random bundle saved by koala.bundle.save into a tmp dir (the shipped
default model is not needed), and scikit-image's sample photos (real photos, offline).
"""

import json
import os
import pathlib
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from koala import color, photo
from koala.bundle import conversion
from koala.bundle import keras_bundle as koala_bundle
from koala.serving import graph, saved_model, tflite
from koala.inference import colorizer as colorizer_lib
from koala.inference import runtime

REPO = pathlib.Path(__file__).resolve().parents[2]
SAVED_MODEL_CLI = pathlib.Path(sys.executable).parent / "saved_model_cli"
WORKING_SIZE = 32
TFLITE_FLOAT_TOLERANCE = 0.01  # Lab units: float TFLite vs Keras (measured ~2e-5)
TFLITE_INT8_TOLERANCE = 3.0  # Lab units: int8 weights on a random model (measured ~0.3)


def tiny_model(output="regression", upsampling="bilinear"):
    """Stride-2 encoder, upsampling, ab head: small, but with what real models have."""
    lightness = keras.Input([None, None, 1], name="L")
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu",
                            name="down")(lightness)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="mid")(x)
    x = keras.layers.UpSampling2D(2, interpolation=upsampling, name="up")(x)
    if output == "regression":
        out = keras.layers.Conv2D(2, 3, padding="same", activation="tanh", name="ab")(x)
    else:
        out = keras.layers.Conv2D(len(color.ab_bins()), 1, name="ab_logits")(x)
    return keras.Model({"L": lightness}, out, name=f"tiny_{output}")


def save_tiny_bundle(directory, output="regression", upsampling="bilinear", **meta):
    """A loaded Bundle of a tiny random model saved with koala.bundle.save."""
    keras.utils.set_random_seed(1)
    koala_bundle.save(directory, tiny_model(output, upsampling),
                      {"model": "tiny", "size": WORKING_SIZE, "output": output, **meta})
    return koala_bundle.load(directory)


def photo_bytes(name, size=None, ext=".jpg"):
    """A real photo (scikit-image's sample) encoded as JPEG or PNG, optionally resized."""
    rgb = cv2.imread(str(tflite.default_parity_photos()[0].parent / f"{name}.png"))
    if size is not None:
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(ext, rgb, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return encoded.tobytes()


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    return save_tiny_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def exported(tiny_bundle, tmp_path_factory):
    """One export (SavedModel + float and int8 TFLite) shared by the tests of this module."""
    return pathlib.Path(saved_model.export(tiny_bundle, tmp_path_factory.mktemp("export") / "koala",
                                           formats=("saved_model", "tflite"), quantize="dynamic"))


@pytest.fixture(scope="module")
def served(exported):
    return tf.saved_model.load(str(exported))


def reference_colorize(bundle, encoded):
    """koala.colorize's result for the same bytes (OpenCV decoding, NumPy recombination)."""
    return colorizer_lib.colorize(decode_png_or_jpeg(encoded), model=bundle)


def decode_png(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return decode_png_or_jpeg(data)


def decode_png_or_jpeg(data):
    """uint8 RGB by OpenCV (accurate-DCT JPEG decoding, as the export and PIL do)."""
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR),
                        cv2.COLOR_BGR2RGB)


def run_quiet(command, **kwargs):
    """Runs a command in a fresh process; fails the test with its stderr if it fails."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=180,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                            **kwargs)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_version_layout_and_metadata(exported, tiny_bundle):
    assert exported.name == "1" and (exported / "saved_model.pb").is_file()
    assert not [p for p in exported.parent.iterdir() if p.name.startswith(".")]  # no staging
    meta = json.loads((exported / saved_model.METADATA_FILE).read_text())
    assert meta["version"] == 1 and meta["working_size"] == WORKING_SIZE
    assert meta["bundle_meta"]["output"] == "regression"
    weights = sum(w.numpy().nbytes for w in tiny_bundle.model.weights)
    stored = saved_model.directory_bytes(exported / "variables")
    assert stored < 1.2 * weights + 20_000  # stored once
    assert meta["saved_model_bytes"] == saved_model.directory_bytes(exported) - sum(
        (exported / f).stat().st_size
        for f in (saved_model.METADATA_FILE, tflite.TFLITE_FILE, tflite.TFLITE_INT8_FILE))


def test_export_to_a_url_filesystem_puts_every_file_in_place(tiny_bundle, exported):
    """A URL base (ram:// here, gs:// for TF Serving on GCS) gets the same files as a local
    export, staged locally and copied up; the served graph answers from there, and the next
    export there takes the next version."""
    base = f"ram://exports-{os.getpid()}/koala"
    target = saved_model.export(tiny_bundle, base)
    assert target == f"{base}/1" and saved_model.existing_versions(base) == [1]
    local = sorted(str(p.relative_to(exported)) for p in exported.rglob("*") if p.is_file()
                   and p.name not in (tflite.TFLITE_FILE, tflite.TFLITE_INT8_FILE))
    remote = sorted(path[len(target) + 1:] for path in _walk_files(target))
    assert remote == local
    assert saved_model.read_metadata(target)["version"] == 1
    image = photo_bytes("coffee", size=(64, 48))
    signature = tf.saved_model.load(target).signatures["serving_default"]
    here = tf.saved_model.load(str(exported)).signatures["serving_default"]
    assert (signature(image_bytes=tf.constant([image]))["colorized_bytes"].numpy()[0]
            == here(image_bytes=tf.constant([image]))["colorized_bytes"].numpy()[0])
    assert saved_model.choose_version(base) == 2


def _walk_files(top):
    return [f"{root.rstrip('/')}/{name}" for root, _, files in tf.io.gfile.walk(top)
            for name in files]


def test_versions_never_overwritten(exported):
    base = exported.parent
    assert saved_model.choose_version(base) == 2
    with pytest.raises(saved_model.ExportError, match="never overwritten"):
        saved_model.choose_version(base, 1)
    assert saved_model.choose_version(base, 7) == 7


def test_saved_model_cli_show_lists_signatures(exported):
    shown = run_quiet([str(SAVED_MODEL_CLI), "show", "--all", "--dir", str(exported)]).stdout
    for expected in ("signature_def['serving_default']", "inputs['image_bytes']",
                     "outputs['colorized_bytes']", "signature_def['colorize_tensor']",
                     "inputs['L']", "outputs['ab']", "signature_def['colorize_tf_example']"):
        assert expected in shown


def test_saved_model_cli_run_returns_png_of_input_size(exported, tmp_path):
    jpegs = np.array([photo_bytes("chelsea"), photo_bytes("coffee", size=(97, 61))], dtype=object)
    np.save(tmp_path / "in.npy", jpegs, allow_pickle=True)
    run_quiet([str(SAVED_MODEL_CLI), "run", "--dir", str(exported), "--tag_set", "serve",
               "--signature_def", "serving_default",
               "--inputs", f"image_bytes={tmp_path / 'in.npy'}",
               "--outdir", str(tmp_path / "out")])
    pngs = np.load(tmp_path / "out" / "colorized_bytes.npy", allow_pickle=True)
    sizes = [decode_png(png).shape for png in pngs]
    assert sizes == [decode_png_or_jpeg(jpeg).shape for jpeg in jpegs]


def test_serving_default_matches_eager_colorize(served, tiny_bundle):
    images = [photo_bytes("chelsea"), photo_bytes("astronaut", size=(131, 77), ext=".png")]
    pngs = served.signatures["serving_default"](image_bytes=tf.constant(images))["colorized_bytes"]
    for encoded, png in zip(images, pngs.numpy()):
        got = decode_png(png).astype(int)
        want = reference_colorize(tiny_bundle, encoded).astype(int)
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1
        assert np.abs(got - want).mean() < 0.05


def test_pad_fit_matches_eager_colorize(tmp_path):
    bundle = save_tiny_bundle(tmp_path / "bundle", fit="pad")
    served = tf.saved_model.load(str(saved_model.export(bundle, tmp_path / "export")))
    image = photo_bytes("astronaut", size=(90, 41), ext=".png")
    png = served.signatures["serving_default"](image_bytes=tf.constant([image]))
    got = decode_png(png["colorized_bytes"].numpy()[0]).astype(int)
    assert np.abs(got - reference_colorize(bundle, image).astype(int)).max() <= 1


@pytest.mark.parametrize("height, width", [(1, 1), (31, 2000), (2000, 31), (481, 321),
                                           (77, 131), (4000, 3000), (160, 160), (7, 900)])
def test_working_size_is_colorize_working_shape(height, width):
    got = [int(side) for side in graph.working_size(height, width, 160, 32)]
    assert tuple(got) == photo.working_shape(height, width, 160, 32)


def test_tf_example_signature_gives_the_same_png(served):
    image = photo_bytes("coffee", size=(80, 60))
    example = tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))}))
    by_example = served.signatures["colorize_tf_example"](
        serialized=tf.constant([example.SerializeToString()]))["colorized_bytes"]
    by_bytes = served.signatures["serving_default"](image_bytes=tf.constant([image]))
    assert by_example.numpy()[0] == by_bytes["colorized_bytes"].numpy()[0]


@pytest.mark.parametrize("output", ["regression", "classification"])
def test_colorize_tensor_matches_bundle(output, tmp_path):
    bundle = save_tiny_bundle(tmp_path / "bundle", output=output)
    served = tf.saved_model.load(str(saved_model.export(bundle, tmp_path / "export")))
    lightness = np.random.default_rng(0).uniform(0, 100, [2, WORKING_SIZE, WORKING_SIZE, 1])
    lightness = lightness.astype(np.float32)
    ab = served.signatures["colorize_tensor"](L=tf.constant(lightness))["ab"].numpy()
    assert ab.shape == (2, WORKING_SIZE, WORKING_SIZE, 2)
    np.testing.assert_allclose(ab, runtime.KerasRuntime(bundle).ab(lightness), atol=1e-2)


@pytest.mark.parametrize("bad, problem", [
    (b"", "empty"),
    (b"this is not an image", "Unknown image file format"),
    ("truncated", "Invalid JPEG data"),
])
def test_bad_bytes_raise_invalid_argument(served, bad, problem):
    if bad == "truncated":
        jpeg = photo_bytes("chelsea")
        bad = jpeg[:len(jpeg) // 3]
    with pytest.raises(tf.errors.InvalidArgumentError, match=problem):
        served.signatures["serving_default"](image_bytes=tf.constant([photo_bytes("coffee"), bad]))


def test_tflite_parity_and_size(exported, tiny_bundle):
    figures = json.loads((exported / saved_model.METADATA_FILE).read_text())["tflite"]
    float_model, int8_model = figures[tflite.TFLITE_FILE], figures[tflite.TFLITE_INT8_FILE]
    assert float_model["parity_vs_keras"]["photos"] == 3
    assert float_model["parity_vs_keras"]["max_ab_diff"] <= TFLITE_FLOAT_TOLERANCE
    assert int8_model["parity_vs_keras"]["max_ab_diff"] <= TFLITE_INT8_TOLERANCE
    assert int8_model["bytes"] < 0.6 * float_model["bytes"]  # int8 weights
    # The file on disk runs and agrees with the Keras model on a real photo.
    lightness = tflite.working_size_lightness(tflite.default_parity_photos()[:1], WORKING_SIZE)
    ab = tflite.tflite_ab((exported / tflite.TFLITE_FILE).read_bytes(), lightness)
    np.testing.assert_allclose(ab, runtime.KerasRuntime(tiny_bundle).ab(lightness),
                               atol=TFLITE_FLOAT_TOLERANCE)


def test_tflite_names_ops_that_need_flex(tmp_path):
    bundle = save_tiny_bundle(tmp_path / "bundle", upsampling="bicubic")
    with pytest.raises(saved_model.ExportError, match="ResizeBicubic.*interpolation='bilinear'"):
        conversion.convert_tflite(bundle)


def test_cli_export_writes_next_version(tiny_bundle, tmp_path):
    (tmp_path / "koala" / "4").mkdir(parents=True)
    result = run_quiet([sys.executable, "-m", "koala.cli", "export", "--model",
                        str(tiny_bundle.path), "--output", str(tmp_path / "koala")], cwd=REPO)
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["export"] == str(tmp_path / "koala" / "5") and line["saved_model_bytes"] > 0
    assert "tflite" not in saved_model.read_metadata(tmp_path / "koala" / "5")
