"""Colour science: agreement with skimage, round trips, bins, soft-encoding, annealed mean."""

import numpy as np
import pytest
from skimage import color as skcolor

from koala import color, photo

RNG = np.random.default_rng(0)
RGB_U8 = RNG.integers(0, 256, (32, 48, 3)).astype(np.uint8)


def test_tf_lab_matches_skimage_within_1e_3():
    ours = color.rgb_to_lab(RGB_U8 / 255.0).numpy()
    np.testing.assert_allclose(ours, skcolor.rgb2lab(RGB_U8), atol=1e-3)


def test_tf_lab_is_batched():
    batch = np.stack([RGB_U8, RGB_U8[::-1]]) / 255.0
    ours = color.rgb_to_lab(batch).numpy()
    np.testing.assert_allclose(ours[1], skcolor.rgb2lab(RGB_U8[::-1]), atol=1e-3)


def test_tf_lab_to_rgb_matches_skimage_and_round_trips():
    lab = skcolor.rgb2lab(RGB_U8)
    np.testing.assert_allclose(color.lab_to_rgb(lab).numpy(), skcolor.lab2rgb(lab), atol=1e-3)
    np.testing.assert_allclose(color.lab_to_rgb(color.rgb_to_lab(RGB_U8 / 255.0)).numpy(),
                               RGB_U8 / 255.0, atol=1e-4)


def test_cv2_lab_error_vs_skimage_is_below_record_quantization():
    # The writer stores ab as integers (step 1): the cv2 path must err by well under that.
    error = np.abs(color.rgb_to_lab_cv2(RGB_U8) - skcolor.rgb2lab(RGB_U8)).max()
    assert error < 0.35
    back = color.lab_to_rgb_cv2(skcolor.rgb2lab(RGB_U8))
    assert np.abs(back * 255 - RGB_U8).max() < 1.0


def test_yuv_matches_bt601_and_round_trips():
    rgb = RGB_U8 / 255.0
    yuv = color.rgb_to_yuv(rgb).numpy()
    np.testing.assert_allclose(yuv[..., 0], rgb @ np.array([0.299, 0.587, 0.114]), atol=1e-5)
    np.testing.assert_allclose(color.yuv_to_rgb(yuv).numpy(), rgb, atol=1e-4)


def test_scaling_maps_ranges_to_unit_interval():
    assert color.scale_l(np.array([0.0, 100.0])).tolist() == [-1.0, 1.0]
    assert color.scale_ab(np.array([-128.0, 64.0])).tolist() == [-1.0, 0.5]
    np.testing.assert_allclose(color.unscale_ab(color.scale_ab(np.array([37.0]))), [37.0])
    np.testing.assert_allclose(color.unscale_l(color.scale_l(np.array([42.0]))), [42.0])


def test_bins_are_exactly_the_grid_cells_that_srgb_reaches():
    # Zhang et al. report Q = 313; the cells that all 16.7M sRGB colours reach number 262
    # (their gamut was looser). Check against every colour on a 4-level-step cube.
    bins = color.ab_bins()
    assert bins.shape == (262, 2)
    levels = np.arange(0, 256, 4, dtype=np.uint8)
    cube = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 1, 3)
    ab = color.rgb_to_lab_cv2(cube).reshape(-1, 3)[:, 1:]
    reached = {tuple(c) for c in (np.round(ab / 10) * 10).astype(int).tolist()}
    assert reached <= {tuple(c) for c in bins.astype(int).tolist()}
    assert len(reached) > 250


def test_every_bin_holds_a_real_colour():
    bins = color.ab_bins()
    lightness = np.linspace(1, 99, 99)
    lab = np.concatenate([np.broadcast_to(lightness[None, :, None], (len(bins), 99, 1)),
                          np.broadcast_to(bins[:, None, :], (len(bins), 99, 2))], -1)
    # A bin's cell (centre +- 5) must hold some in-gamut colour: test the cell's corners too.
    corners = [np.array((x, y)) for x in np.linspace(-4.99, 4.99, 7) for y in np.linspace(-4.99, 4.99, 7)]
    in_gamut = np.zeros(len(bins), bool)
    for offset in corners:
        shifted = lab.copy()
        shifted[..., 1:] += offset
        rgb = photo.lab_to_linear_rgb(shifted)
        in_gamut |= np.all((rgb >= 0) & (rgb <= 1), -1).any(-1)
    assert in_gamut.all()


def test_soft_encoding_sums_to_one_on_five_nearest_bins():
    ab = RNG.uniform(-100, 100, (7, 2)).astype(np.float32)
    encoded = color.soft_encode(ab).numpy()
    np.testing.assert_allclose(encoded.sum(-1), 1.0, atol=1e-5)
    assert ((encoded > 0).sum(-1) == 5).all()
    nearest = color.nearest_bin(ab).numpy()
    assert (encoded.argmax(-1) == nearest).all()


def test_annealed_mean_limits_are_mode_and_mean():
    bins = color.ab_bins()
    logits = RNG.normal(size=(4, len(bins))).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(color.annealed_mean(logits, 1.0).numpy(), probs @ bins,
                               atol=1e-3)
    np.testing.assert_allclose(color.annealed_mean(logits, 1e-3).numpy(),
                               bins[logits.argmax(-1)], atol=1e-3)


def test_histograms_count_every_sample():
    ab = RNG.uniform(-120, 120, (5000, 2))
    counts = color.histogram_counts(ab)
    assert counts.sum() == 5000
    fine = color.fine_histogram_counts(ab)
    assert fine.shape == (128, 128) and fine.sum() == 5000
    # A sample at a bin centre lands in that bin.
    single = color.histogram_counts(color.ab_bins()[17:18])
    assert single.argmax() == 17 and single.sum() == 1


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.9])
def test_rebalancing_weights_have_expectation_one(lam):
    counts = RNG.integers(0, 1000, len(color.ab_bins()))
    prior = color.smoothed_prior(counts)
    assert prior.min() > 0 and abs(prior.sum() - 1) < 1e-9
    weights = color.rebalancing_weights(prior, lam)
    assert abs((prior * weights).sum() - 1.0) < 1e-5
    # Rarer bins weigh more whenever rebalancing is on.
    if lam > 0:
        assert weights[prior.argmin()] > weights[prior.argmax()]
