"""Every experiment end to end, as its users run it: records built from real photos ->
train -> bundle -> colorize a real photo at its full size -> export (SavedModel via
`saved_model_cli run`, and TFLite run by LiteRT).

The cheap experiments run by default at `:tiny`; the paper backbones (Inception-ResNet-v2
from a weights file saved from a random init, EfficientNet-B7) under `-m slow`. Records are
built once per module by the experiments themselves (koala.training.records.ensure_records, 48 photos
of ../shared/data/photos/train at 32 px), shared by the experiments that declare the same.
"""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from koala import color, image_io
from koala.bundle import keras_bundle
from koala.inference import colorizer as colorizer_lib
from koala.serving import saved_model, tflite
from koala.training import config as training_config, distribute, loop, records

SAVED_MODEL_CLI = pathlib.Path(sys.executable).parent / "saved_model_cli"
PHOTO = "benchmark/kodak24/kodim23.png"  # 768 x 512: colorized at its full size
# One per output kind and input route by default (classification; YUV bins; regression with
# a global branch); the rest (~45 s each here, an EfficientNet-Lite0 at 224 inside) under
# -m slow, with the paper backbones.
EXPERIMENTS = ["zhang_eccv16", "cifar10_unet_classification", "iizuka"] + [
    pytest.param(name, marks=pytest.mark.slow) for name in
    ("default", "koalarization_lite", "effnet_head_lite", "cifar10_unet_regression")]


@pytest.fixture(scope="module")
def workroot(tmp_path_factory):
    """The folder the experiments run in: relative records/ paths land (and are shared) here."""
    return tmp_path_factory.mktemp("pipelines")


def tiny_config(name, shared_data):
    """NAME:tiny, 2 steps, with the ../shared/data paths of the experiment made absolute."""
    config = training_config.load_config(f"{name}:tiny")
    config.train.steps = 2
    shared = str(shared_data)
    if config.data.get("pipeline", "records") == "photo_crops":
        # 24 real photos: the default reads and caches its whole folder before step 1
        config.data.train_photos = f"{shared}/benchmark/kodak24"
        config.data.val_photos = config.data.val_photos.replace("../shared/data", shared)
    config.data.source = config.data.source.replace("../shared/data", shared)
    return config


def random_init_weights(backbone, path):
    """A weights file saved from a randomly initialised backbone (offline stand-in for the
    ImageNet download), in the layout keras.applications loads."""
    if backbone == "inception_resnet_v2":
        model = keras.applications.InceptionResNetV2(weights=None, classifier_activation=None)
    else:
        model = keras.applications.EfficientNetB7(weights=None, include_top=False)
    model.save_weights(path)
    return str(path)


def serve_photo(export_dir, photo, out_dir):
    """`saved_model_cli run` (a fresh process) on serving_default -> the decoded PNG."""
    encoded = np.array([photo.read_bytes()], dtype=object)
    np.save(out_dir / "in.npy", encoded, allow_pickle=True)
    result = subprocess.run(
        [str(SAVED_MODEL_CLI), "run", "--dir", str(export_dir), "--tag_set", "serve",
         "--signature_def", "serving_default", "--inputs", f"image_bytes={out_dir / 'in.npy'}",
         "--outdir", str(out_dir / "served")],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    png = np.load(out_dir / "served" / "colorized_bytes.npy", allow_pickle=True)[0]
    return tf.io.decode_png(png, channels=3).numpy()


def run_end_to_end(config, workroot, tmp_path, shared_data, monkeypatch):
    monkeypatch.chdir(workroot)
    keras.backend.clear_session()
    summary = loop.train(config, tmp_path / "run", strategy=tf.distribute.get_strategy())
    assert summary["step"] == config.train.steps and np.isfinite(summary["train_loss"])
    assert np.isfinite(summary["val"]["loss"]) and summary["val"]["psnr"] > 10

    loaded = keras_bundle.load(tmp_path / "run")
    assert [t.name.split(":")[0] for t in loaded.model.inputs] == ["L"]  # the photo alone
    photo = shared_data / PHOTO
    original = image_io.read_image(photo)
    colorized = colorizer_lib.colorize(original, model=loaded)
    assert colorized.shape == original.shape  # full size
    assert np.isfinite(colorized).all() and np.ptp(colorized.astype(int), axis=-1).max() > 0

    exported = saved_model.export(loaded, tmp_path / "export")
    served = serve_photo(exported, photo, tmp_path)
    assert served.shape == original.shape
    # the served graph and the in-process colorize agree (the same bundle, the same photo)
    assert np.abs(served.astype(int) - colorized.astype(int)).mean() < 2.0

    # koala export --format tflite
    figures = tflite.add_tflite_to_bundle(loaded, parity_photos=[photo])
    assert figures["parity_vs_keras"]["max_level_diff"] <= 2
    lite = colorizer_lib.Colorizer(loaded.path)
    assert lite.runtime.engine == "LiteRT"
    assert np.abs(colorizer_lib.colorize(original, model=lite).astype(int)
                  - colorized.astype(int)).max() <= 2
    return loaded


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_experiment_trains_bundles_colorizes_and_serves(
        name, workroot, tmp_path, shared_data, monkeypatch):
    config = tiny_config(name, shared_data)
    loaded = run_end_to_end(config, workroot, tmp_path, shared_data, monkeypatch)
    assert loaded.meta["name"] == name and loaded.meta["size"] == config.data.size


def test_koalarization_on_precomputed_embeddings_carries_its_backbone(
        workroot, tmp_path, shared_data, monkeypatch):
    """The paper's route (embedding precomputed into the records), with the offline
    EfficientNet-Lite0 classifier as the embedding backbone: its 1280-d pooled features."""
    config = tiny_config("koalarization", shared_data)
    config.data.embedding_backbone = "efficientnet_lite0"
    loaded = run_end_to_end(config, workroot, tmp_path, shared_data, monkeypatch)
    assert config.model.kwargs.embedding_dim == 1280  # read from the records
    manifest = records.manifest(workroot / config.data.records)
    assert manifest["settings"]["embedding"] == "efficientnet_lite0"
    assert loaded.model.get_layer("efficientnet_lite0_embedding").trainable is False


@pytest.mark.slow
def test_koalarization_on_inception_resnet_v2_from_a_weights_file(
        workroot, tmp_path, shared_data, monkeypatch):
    """The paper configuration: IRv2's 1000 logits precomputed by `koala records`
    --embedding_weights FILE, and the bundle rebuilt from the same file."""
    config = tiny_config("koalarization", shared_data)
    config.model.kwargs.weights = random_init_weights(
        "inception_resnet_v2", tmp_path / "irv2_random.weights.h5")
    run_end_to_end(config, workroot, tmp_path, shared_data, monkeypatch)
    assert config.model.kwargs.embedding_dim == 1000


@pytest.mark.slow
def test_effnet_head_on_efficientnet_b7_from_a_weights_file(
        workroot, tmp_path, shared_data, monkeypatch):
    config = tiny_config("effnet_head", shared_data)
    config.model.kwargs.weights = random_init_weights(
        "efficientnet_b7", tmp_path / "b7_random.weights.h5")
    run_end_to_end(config, workroot, tmp_path, shared_data, monkeypatch)


def test_train_bundle_colorize_entirely_on_ram_filesystem(tmp_path, shared_data, monkeypatch):
    """Records, checkpoints, TensorBoard, metrics and the bundle on TensorFlow's in-memory
    filesystem: a path mangled by pathlib (ram:/x) would land on the local disk instead."""
    monkeypatch.chdir(tmp_path)
    root = f"ram://pipelines-{os.getpid()}"
    config = tiny_config("zhang_eccv16", shared_data)
    config.data.records = f"{root}/records"
    keras.backend.clear_session()
    loop.train(config, f"{root}/run", strategy=tf.distribute.get_strategy())
    listing = {name.rstrip("/") for name in tf.io.gfile.listdir(f"{root}/run")}
    assert {"checkpoints", "train", "val", "bundle", "metrics.jsonl"} <= listing
    assert tf.io.gfile.glob(f"{root}/records/train-*.tfrecord")
    assert not os.listdir(tmp_path)  # nothing written to the local disk
    loaded = keras_bundle.load(f"{root}/run")
    photo_bytes = (shared_data / PHOTO).read_bytes()
    tf.io.gfile.GFile(f"{root}/photo.png", "wb").write(photo_bytes)
    original = image_io.decode(tf.io.gfile.GFile(f"{root}/photo.png", "rb").read())
    colorized = colorizer_lib.colorize(original, model=loaded)
    assert colorized.shape == original.shape


def _koala_train(*args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "koala.cli", "train", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=env)


def test_user_errors_are_one_line_without_a_traceback(tmp_path, shared_data):
    """Offline, the paper's records need IRv2's ImageNet file: the one line names it and
    the flags that take a local copy; records without embeddings are refused by name."""
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "manifest.json").write_text(json.dumps({"settings": {"size": 32}}))
    cases = {
        "weights": (["--config.data.source", f"{shared_data}/photos/train"],
                    ("inception_resnet_v2_weights_tf_dim_ordering_tf_kernels.h5",
                     "--config.model.kwargs.weights=FILE", "--embedding_weights FILE")),
        "records": ([f"--config.data.records={tmp_path / 'plain'}"],
                    ("holds no embedding", "make records MODEL=koalarization")),
    }
    for case, (args, needed) in cases.items():
        result = _koala_train("--experiment", "koalarization:tiny", "--workdir", "run", *args,
                              cwd=tmp_path)
        lines = [line for line in result.stderr.splitlines() if line.startswith("koala train:")]
        assert result.returncode == 1, (case, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, (case, result.stderr[-2000:])
        assert len(lines) == 1, (case, result.stderr[-2000:])
        for text in needed:
            assert text in lines[0], (case, lines[0])


def test_default_trains_with_class_rebalancing_from_its_photos_prior(
        workroot, tmp_path, shared_data, monkeypatch):
    """The `rebalanced` idea of issue 15 runs through koala train: the prior comes from the
    training photos (the default reads no records), weighs the bin loss and is recorded."""
    from koala.data import prior as prior_lib

    config = tiny_config("default", shared_data)
    prior = prior_lib.ab_prior(config.data.train_photos)
    assert prior.shape == (len(color.ab_bins()),) and abs(prior.sum() - 1) < 1e-6
    assert np.abs(color.ab_bins()[prior.argmax()]).max() <= 20  # real photos: mostly muted
    monkeypatch.chdir(workroot)
    losses = {}
    for rebalance in (False, True):  # the same seed, data and start: only the loss differs
        config.loss.rebalance = rebalance
        keras.backend.clear_session()
        summary = loop.train(config, tmp_path / f"run_{rebalance}",
                             strategy=tf.distribute.get_strategy())
        assert summary["step"] == 2 and np.isfinite(summary["train_loss"])
        losses[rebalance] = summary["train_loss"]
    assert losses[True] != pytest.approx(losses[False], rel=1e-3)
    trained_with = json.loads((tmp_path / "run_True" / "config.json").read_text())
    assert trained_with["loss"]["rebalance"] is True and trained_with["loss"]["lam"] == 0.5


def test_default_trains_with_a_feature_loss_through_a_frozen_backbone(
        workroot, tmp_path, shared_data, monkeypatch):
    """loss.feature_weight adds losses.feature_distance (which needs the input L) in the one
    loop, in training and validation, and the run records it."""
    config = tiny_config("default", shared_data)
    monkeypatch.chdir(workroot)
    summaries = {}
    for weight in (0.0, 1.0):  # the same seed, data and start: only the loss differs
        config.loss.feature_weight = weight
        keras.backend.clear_session()
        summaries[weight] = loop.train(config, tmp_path / f"run_{weight}",
                                       strategy=tf.distribute.get_strategy())
        assert summaries[weight]["step"] == 2 and np.isfinite(summaries[weight]["train_loss"])
    # a feature distance is positive for an untrained model: the loss grows in both splits
    assert summaries[1.0]["train_loss"] > summaries[0.0]["train_loss"] + 0.05
    assert summaries[1.0]["val"]["loss"] > summaries[0.0]["val"]["loss"] + 0.05
    trained_with = json.loads((tmp_path / "run_1.0" / "config.json").read_text())
    assert trained_with["loss"]["feature_weight"] == 1.0
