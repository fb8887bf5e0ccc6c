"""The input pipelines by name, and the one ab prior of an experiment's training data."""

import json
import shutil

import cv2
import numpy as np
import pytest

from koala import color, image_io
from koala.data import prior as prior_lib
from koala.training import config as training_config, inputs, losses


@pytest.fixture(scope="module")
def photo_folder(sample_photos, tmp_path_factory):
    """Four real photos of photos/val in a folder of their own (two of them in a subfolder)."""
    folder = tmp_path_factory.mktemp("photos")
    for index, path in enumerate(sample_photos(4)):
        target = folder / ("sub" if index % 2 else "") / f"{index}.jpg"
        target.parent.mkdir(exist_ok=True)
        shutil.copy(path, target)
    return folder


def default_tiny(photo_folder, **data):
    config = training_config.load_config("default:tiny")
    config.data.update(train_photos=str(photo_folder), val_photos=str(photo_folder), **data)
    config.data.val_every = 1
    return config


def test_the_prior_of_a_photo_folder_counts_photos_evenly_over_it_shrunk_to_64_px(
        photo_folder):
    def expected(paths):
        counts = np.zeros(len(color.ab_bins()), np.int64)
        for path in paths:
            rgb = cv2.resize(image_io.read_image(path), (64, 64), interpolation=cv2.INTER_AREA)
            counts += color.histogram_counts(color.rgb_to_lab_cv2(rgb)[..., 1:])
        return color.smoothed_prior(counts)

    paths = sorted(photo_folder.rglob("*.jpg"))  # 0.jpg, 2.jpg, sub/1.jpg, sub/3.jpg
    np.testing.assert_allclose(prior_lib.ab_prior(photo_folder), expected(paths), rtol=1e-12)
    np.testing.assert_allclose(prior_lib.ab_prior(photo_folder, count=2), expected(paths[::2]),
                               rtol=1e-12)  # every other photo: the sample spans the folder


def test_the_prior_of_records_is_their_manifest_histogram(tmp_path):
    counts = np.zeros(len(color.ab_bins()), np.int64)
    counts[[3, 40, 41]] = [5, 100, 7]
    (tmp_path / "manifest.json").write_text(json.dumps({"prior": {"counts": counts.tolist()}}))
    np.testing.assert_allclose(prior_lib.ab_prior(tmp_path), color.smoothed_prior(counts))
    (tmp_path / "manifest.json").write_text(json.dumps({"settings": {}}))
    config = training_config.load_config("zhang_eccv16:tiny")
    config.data.records = str(tmp_path)
    with pytest.raises(training_config.ConfigError, match="no ab histogram.*koala records"):
        inputs.ab_prior(config)


def test_each_pipeline_trains_on_the_prior_of_its_own_training_data(
        photo_folder, tmp_path, monkeypatch):
    """Both rebalanced losses (the records' rebalanced_cross_entropy, the photo folders'
    huber_bins with loss.rebalance) read the one prior function, of the data they train on."""
    read = []
    monkeypatch.setattr(prior_lib, "ab_prior", lambda source: read.append(str(source)) or
                        np.full(len(color.ab_bins()), 1.0 / len(color.ab_bins())))
    records = training_config.load_config("zhang_eccv16:tiny")
    records.data.records = str(tmp_path / "records")
    photos = default_tiny(photo_folder)
    photos.data.train_photos = str(photo_folder / "sub")  # val_photos: the whole folder
    photos.loss.rebalance = True
    for config in (records, photos):
        assert isinstance(losses.build(config), losses.Loss)
    assert read == [str(tmp_path / "records"), str(photo_folder / "sub")]


def test_an_unknown_pipeline_lists_the_registered_ones(photo_folder):
    assert inputs.names() == ["photo_crops", "records"]
    config = default_tiny(photo_folder, pipeline="webdataset")
    with pytest.raises(training_config.ConfigError, match=r"'webdataset'.*photo_crops.*records"):
        inputs.dataset_fn(config)


@pytest.mark.parametrize("hints", [False, True])
def test_photo_crops_batches_carry_simulated_hints_when_the_config_asks(photo_folder, hints):
    config = default_tiny(photo_folder, hints=hints)
    inputs.prepare(config)  # nothing to prepare for photo folders
    dataset_fn = inputs.dataset_fn(config)
    for split in ("train", "val"):
        features, ab = next(iter(dataset_fn(split, 2)))
        assert sorted(features) == (["L", "hints"] if hints else ["L"]), split
        assert features["L"].shape == (2, 64, 64, 1) and ab.shape == (2, 64, 64, 2)
        if hints:
            assert features["hints"].shape == (2, 64, 64, 3)


def test_the_bundle_fits_photos_as_the_pipeline_trained(photo_folder, tmp_path):
    from koala.training import builders

    config = training_config.load_config("zhang_eccv16:tiny")
    config.data.records = str(tmp_path)
    for resize, fit in (("pad", "pad"), ("crop", "aspect"), (None, None)):
        settings = {"resize": resize} if resize else {}
        (tmp_path / "manifest.json").write_text(json.dumps({"settings": settings}))
        assert builders.bundle_meta(config, "classification").get("fit") == fit, resize
    assert "fit" not in builders.bundle_meta(default_tiny(photo_folder), "regression")
