"""The default model: its head blending, its bundle round trip, and the shipped weights."""

import numpy as np
import pytest

from koala import bundle, color, colorize, demo, metrics
from koala.models import effnet_unet

SIZE = 64


@pytest.fixture(scope="module")
def two_head_model():
    return effnet_unet.build(weights=None, decoder_filters=(16, 8, 8, 8, 8))


def _lightness(seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (1, SIZE, SIZE, 1)).astype(np.float32)


def test_blend_weight_one_is_the_regression_head(two_head_model):
    lightness = _lightness()
    heads = two_head_model({"L": lightness})
    blended = effnet_unet.inference_model(two_head_model, 1.0, 0.38)({"L": lightness})["ab"]
    np.testing.assert_allclose(blended.numpy(), heads["ab"].numpy(), atol=1e-6)


def test_a_strong_bin_bias_selects_that_bins_colour(two_head_model):
    target = 200
    bias = np.zeros(len(color.ab_bins()), np.float32)
    bias[target] = 1e4
    model = effnet_unet.inference_model(two_head_model, 0.0, 1.0, bias)
    ab = color.unscale_ab(model({"L": _lightness()})["ab"].numpy())
    np.testing.assert_allclose(ab, np.broadcast_to(color.ab_bins()[target], ab.shape), atol=1e-3)


def test_blend_matches_annealed_mean_of_the_logits(two_head_model):
    lightness = _lightness(1)
    heads = two_head_model({"L": lightness})
    expected = color.scale_ab(color.annealed_mean(heads["ab_logits"], 0.5)).numpy()
    model = effnet_unet.inference_model(two_head_model, 0.0, 0.5)
    got = model({"L": lightness})["ab"].numpy()
    # The blend upsamples stride-4 logits' annealed mean bilinearly: compare at stride 4.
    np.testing.assert_allclose(got[:, 1::4, 1::4].mean(), expected.mean(), atol=0.02)
    assert got.shape == (1, SIZE, SIZE, 2)


def test_blended_bundle_round_trips(tmp_path, two_head_model):
    bias = np.linspace(-1, 1, len(color.ab_bins())).astype(np.float32)
    model = effnet_unet.inference_model(two_head_model, 0.25, 0.6, bias)
    bundle.save(tmp_path, model, {"model": "effnet_unet", "size": SIZE, "output": "regression"})
    loaded = bundle.load(tmp_path)
    lightness = _lightness(2)
    np.testing.assert_allclose(loaded.model({"L": lightness})["ab"].numpy(),
                               model({"L": lightness})["ab"].numpy(), atol=1e-6)


def _shipped():
    try:
        return bundle.load("default")
    except FileNotFoundError:
        pytest.skip("the default model is not in koala/weights/default")


def test_shipped_default_beats_gray_on_the_packaged_photos():
    colorizer = colorize.Colorizer(_shipped())
    gains, ratios = [], []
    for truth in demo.packaged_photos().values():
        gray = demo.gray_version(truth)
        koala = colorizer.colorize_many([gray])[0]
        assert koala.shape == truth.shape
        gains.append(metrics.psnr(koala / 255, truth / 255) - metrics.psnr(gray / 255, truth / 255))
        ratios.append(metrics.colorfulness(koala) / metrics.colorfulness(truth))
    assert np.mean(gains) > 0.5, gains
    assert 0.4 < np.mean(ratios) < 2.0, ratios
