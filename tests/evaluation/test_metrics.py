"""The papers' metrics against values computed by hand on tiny arrays."""

import numpy as np
import pytest

from koala import color

# Truth ab at distances 0, 75 and 300 from the origin (3-4-5 triangles).
from koala.evaluation import metrics

# Truth ab at distances 0, 75 and 300 from the origin (3-4-5 triangles).
TRUTH = np.array([[[0.0, 0.0], [45.0, 60.0], [180.0, 240.0]]], np.float32)
GRAY = np.zeros_like(TRUTH)


def test_ab_mse_is_mean_over_pixels_and_channels():
    pred = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    assert metrics.ab_mse(pred, np.zeros_like(pred)) == pytest.approx((1 + 4 + 9 + 16) / 4)


def test_psnr_by_hand():
    assert metrics.psnr(np.full((2, 2, 3), 0.5), np.full((2, 2, 3), 0.4)) == pytest.approx(20.0)
    assert metrics.psnr(np.ones((2, 2, 3)), np.ones((2, 2, 3))) == float("inf")


def test_ssim_of_identical_images_is_one_and_drops_with_noise():
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(32, 32, 3)).astype(np.float32)
    assert metrics.ssim(image, image) == pytest.approx(1.0)
    assert metrics.ssim(np.clip(image + rng.normal(0, 0.2, image.shape), 0, 1), image) < 0.9


def test_raw_accuracy_counts_pixels_within_threshold():
    # distances 0, 75, 300: within 10 -> 1 of 3; within 75 (inclusive) -> 2 of 3
    assert metrics.raw_accuracy(GRAY, TRUTH, 10) == pytest.approx(100 / 3)
    assert metrics.raw_accuracy(GRAY, TRUTH, 75) == pytest.approx(200 / 3)
    assert metrics.raw_accuracy(GRAY, TRUTH, 10, weights=[[1, 0, 0]]) == pytest.approx(100.0)


def test_auc_of_perfect_prediction_is_100():
    assert metrics.auc(TRUTH, TRUTH) == pytest.approx(100.0)
    assert metrics.accuracy_curve(TRUTH, TRUTH) == pytest.approx(np.full(151, 100.0))


def test_auc_of_gray_by_hand():
    # AuC = 100 (1 - mean(min(d, 150)) / 150) = 100 (1 - (0 + 75 + 150) / 3 / 150) = 50
    assert metrics.auc(GRAY, TRUTH) == pytest.approx(50.0)
    # the sampled curve integrates (trapezoid, thresholds 0..150) to within a point of it
    curve = metrics.accuracy_curve(GRAY, TRUTH)
    assert np.trapezoid(curve, dx=1.0) / 150 == pytest.approx(50.0, abs=1.0)


def test_rebalanced_auc_weights_rare_colours_up():
    truth = np.array([[[0.0, 0.0]] * 3 + [[60.0, 80.0]]], np.float32)  # 3 gray, 1 rare
    prior = np.zeros(len(color.ab_bins()))
    prior[color.bin_index(np.array([0.0, 0.0]))] = 0.75
    prior[color.bin_index(np.array([60.0, 80.0]))] = 0.25
    weights = metrics.pixel_rarity_weights(truth, prior)
    # each pixel weighted 1 / p: the rare pixel counts as much as the three common ones
    assert weights[0, 3] * 1 == pytest.approx(weights[0, 0] * 3)
    plain = metrics.auc(np.zeros_like(truth), truth)  # 100 (1 - 100 / 4 / 150)
    rebalanced = metrics.auc(np.zeros_like(truth), truth, weights)  # 100 (1 - 50 / 150)
    assert plain == pytest.approx(100 * (1 - 25 / 150))
    assert rebalanced == pytest.approx(100 * (1 - 50 / 150))


def test_bin_index_agrees_with_color_nearest_bin():
    ab = np.random.default_rng(1).uniform(-100, 100, (500, 2)).astype(np.float32)
    inside = color.bin_index(ab)
    expected = color.nearest_bin(ab).numpy()
    distance = lambda i: np.linalg.norm(color.ab_bins()[i] - ab, axis=-1)  # noqa: E731
    # equal except at exact ties, where both bins are equally near
    assert np.allclose(distance(inside), distance(expected), atol=1e-4)


def test_colorfulness_matches_hasler_suesstrunk_formula():
    rgb = np.array([[[255, 0, 0], [0, 0, 255], [40, 200, 90]]], np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    expected = np.hypot(np.std(rg), np.std(yb)) + 0.3 * np.hypot(np.mean(rg), np.mean(yb))
    assert metrics.colorfulness(rgb) == pytest.approx(expected)
    # two pixels by hand: rg = (255, 0), yb = (127.5, -255)
    two = np.array([[[255, 0, 0], [0, 0, 255]]])
    by_hand = np.hypot(127.5, 191.25) + 0.3 * np.hypot(127.5, -63.75)
    assert metrics.colorfulness(two) == pytest.approx(by_hand)
    assert metrics.colorfulness(np.full((4, 4, 3), 128)) == 0.0


def test_accumulator_pools_pixels_across_images():
    rng = np.random.default_rng(2)
    truths = [rng.normal(0, 30, (4, 5, 2)), rng.normal(0, 30, (6, 3, 2))]
    preds = [rng.normal(0, 30, t.shape) for t in truths]
    rgb = np.zeros((4, 4, 3))
    accumulator = metrics.Accumulator(accuracy_threshold=20.0)
    for pred, truth in zip(preds, truths):
        accumulator.add(pred, truth, rgb, rgb, with_ssim=False)
    pooled_pred = np.concatenate([p.reshape(-1, 2) for p in preds])
    pooled_truth = np.concatenate([t.reshape(-1, 2) for t in truths])
    result = accumulator.result()
    assert result["auc"] == pytest.approx(metrics.auc(pooled_pred, pooled_truth))
    assert result["ab_mse"] == pytest.approx(metrics.ab_mse(pooled_pred, pooled_truth))
    assert result["raw_accuracy@20"] == pytest.approx(
        metrics.raw_accuracy(pooled_pred, pooled_truth, 20.0))
    assert result["accuracy_curve"] == pytest.approx(
        metrics.accuracy_curve(pooled_pred, pooled_truth).tolist())
