"""Colour science shared by every Koala system.

Lab is CIE L*a*b* of sRGB under D65 with the same numbers as skimage.color.rgb2lab.
Model tensors use the [-1, 1] scaling of Deep Koalarization: L/50 - 1 and ab/128.
The quantized ab gamut, soft-encoding, annealed mean and priors follow Zhang et al. 2016.

Two implementations of RGB->Lab exist on purpose: batched TF ops (in graphs: training,
SavedModel export) and an OpenCV path for the TFRecord writer, measured 5x faster on CPU.
"""

import functools

import numpy as np
import tensorflow as tf

from koala.photo import (  # the CIE constants' TF-free home, for LiteRT
    AB_RANGE, AB_SCALE, D65_WHITE, EPSILON, GRID_SIZE, KAPPA, RGB_TO_XYZ, XYZ_TO_RGB, ab_bins,
    lab_to_rgb_cv2, rgb_to_lab_cv2)

L_SCALE = 50.0
UV_SCALE = (0.436, 0.615)  # BT.601 extremes of U and V: model units are U/0.436, V/0.615



# --------------------------------------------------------------------------- RGB <-> Lab (TF)

def rgb_to_lab(rgb):
    """RGB in [0, 1], shape [..., 3] -> Lab (L in [0, 100], a/b roughly [-128, 127])."""
    rgb = tf.convert_to_tensor(rgb, tf.float32)
    linear = tf.where(rgb > 0.04045, tf.pow((rgb + 0.055) / 1.055, 2.4), rgb / 12.92)
    xyz = tf.tensordot(linear, tf.constant(RGB_TO_XYZ.T, tf.float32), axes=1)
    xyz = xyz / tf.constant(D65_WHITE, tf.float32)
    f = tf.where(xyz > EPSILON, tf.pow(tf.maximum(xyz, EPSILON), 1.0 / 3.0),
                 KAPPA * xyz + 16.0 / 116.0)
    fx, fy, fz = tf.unstack(f, axis=-1)
    y = xyz[..., 1]
    lightness = tf.where(y > EPSILON, 116.0 * fy - 16.0, 903.3 * y)
    return tf.stack([lightness, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def _lab_to_linear_rgb(lab):
    """Lab [..., 3] -> unclipped linear RGB [..., 3]."""
    lightness, a, b = tf.unstack(tf.convert_to_tensor(lab, tf.float32), axis=-1)
    fy = (lightness + 16.0) / 116.0
    f = tf.stack([fy + a / 500.0, fy, fy - b / 200.0], axis=-1)
    xyz = tf.where(f > 0.2068966, tf.pow(f, 3.0), (f - 16.0 / 116.0) / KAPPA)
    xyz = xyz * tf.constant(D65_WHITE, tf.float32)
    return tf.tensordot(xyz, tf.constant(XYZ_TO_RGB.T, tf.float32), axes=1)


def _desaturate_into_gamut(linear):
    """Moves each linear RGB colour towards the grey of equal luminance until it fits in
    [0, 1]: Y is a fixed weighted sum, so Y, and with it L, is kept exactly (koala.photo
    does the same in NumPy)."""
    y_weights = tf.constant(RGB_TO_XYZ[1], tf.float32)
    luminance = tf.clip_by_value(tf.tensordot(linear, y_weights, axes=1), 0.0, 1.0)[..., None]
    towards = linear - luminance
    safe = tf.where(towards == 0.0, 1.0, towards)
    limit = tf.where(towards > 0, (1.0 - luminance) / safe,
                     tf.where(towards < 0, -luminance / safe, np.inf))
    keep = tf.clip_by_value(tf.reduce_min(limit, axis=-1, keepdims=True), 0.0, 1.0)
    return luminance + keep * towards


def lab_to_rgb(lab, keep_lightness=False):
    """Lab [..., 3] -> sRGB in [0, 1].

    Out-of-gamut colours are clamped per channel, or with keep_lightness desaturated
    towards the grey of equal luminance, so L survives (the colorize path; in-gamut colours
    are the same either way).
    """
    linear = _lab_to_linear_rgb(lab)
    if keep_lightness:
        linear = _desaturate_into_gamut(linear)
    linear = tf.maximum(linear, 0.0)
    rgb = tf.where(linear > 0.0031308,
                   1.055 * tf.pow(tf.maximum(linear, 0.0031308), 1.0 / 2.4) - 0.055,
                   12.92 * linear)
    return tf.clip_by_value(rgb, 0.0, 1.0)


def rgb_to_yuv(rgb):
    """RGB in [0, 1] -> YUV by the BT.601 matrix of tf.image (seed 004)."""
    return tf.image.rgb_to_yuv(tf.convert_to_tensor(rgb, tf.float32))


def yuv_to_rgb(yuv):
    """YUV -> RGB in [0, 1] (clipped)."""
    return tf.clip_by_value(tf.image.yuv_to_rgb(tf.convert_to_tensor(yuv, tf.float32)), 0.0, 1.0)


# --------------------------------------------------------------------------- fast NumPy path

# --------------------------------------------------------------------------- [-1, 1] scaling

def scale_l(lightness):
    """L in [0, 100] -> [-1, 1]."""
    return lightness / L_SCALE - 1.0


def unscale_l(scaled):
    """[-1, 1] -> L in [0, 100]."""
    return (scaled + 1.0) * L_SCALE


def scale_ab(ab):
    """a, b in [-128, 127] -> [-1, 1]."""
    return ab / AB_SCALE


def unscale_ab(scaled):
    """[-1, 1] -> a, b."""
    return scaled * AB_SCALE


def target_to_rgb(gray, target, color_space):
    """Model-scaled gray [B,H,W,1] + target [B,H,W,2] -> RGB in [0, 1] (for images, PSNR).

    Lab models read L/50 - 1 and predict ab/128; YUV models (seed 004) read Y*2 - 1 and
    predict U, V over their BT.601 ranges (UV_SCALE).
    """
    if color_space == "yuv":
        rgb = yuv_to_rgb(tf.concat([(gray + 1.0) / 2.0, target * UV_SCALE], axis=-1))
    else:
        rgb = lab_to_rgb(tf.concat([unscale_l(gray), unscale_ab(target)], -1))
    return tf.clip_by_value(rgb, 0.0, 1.0)


# --------------------------------------------------------------------------- quantized ab gamut

def soft_encode(ab, bins=None, neighbours=5, sigma=5.0):
    """ab [..., 2] (Lab units) -> soft targets [..., Q]: Gaussian weights on the 5 nearest bins."""
    bins = tf.constant(ab_bins() if bins is None else bins, tf.float32)
    ab = tf.convert_to_tensor(ab, tf.float32)
    dist2 = tf.reduce_sum(tf.square(ab[..., None, :] - bins), axis=-1)  # [..., Q]
    neg, idx = tf.math.top_k(-dist2, k=neighbours)
    weights = tf.nn.softmax(neg / (2.0 * sigma ** 2), axis=-1)
    return tf.reduce_sum(tf.one_hot(idx, tf.shape(bins)[0]) * weights[..., None], axis=-2)


def nearest_bin(ab, bins=None):
    """Index of the nearest bin for each ab [..., 2] (Lab units)."""
    bins = tf.constant(ab_bins() if bins is None else bins, tf.float32)
    ab = tf.convert_to_tensor(ab, tf.float32)
    return tf.argmin(tf.reduce_sum(tf.square(ab[..., None, :] - bins), axis=-1), axis=-1)


def annealed_mean(logits, temperature=0.38, bins=None, from_logits=True):
    """Distribution over bins [..., Q] -> ab [..., 2] in Lab units (Zhang et al. eq. 5).

    T -> 0 gives the mode, T = 1 the mean; 0.38 is Zhang's trade-off between the two.
    """
    bins = tf.constant(ab_bins() if bins is None else bins, tf.float32)
    logits = tf.convert_to_tensor(logits, tf.float32)
    log_p = logits if from_logits else tf.math.log(tf.maximum(logits, 1e-12))
    probs = tf.nn.softmax(log_p / temperature, axis=-1)
    return tf.tensordot(probs, bins, axes=1)


# --------------------------------------------------------------------------- priors p(a, b)

FINE_EDGES = np.arange(-128, 129, 2, dtype=np.float64)  # 2-unit grid over the full ab range


@functools.lru_cache(maxsize=None)
def _cell_to_bin():
    """[23, 23] table: grid cell of ab (step 10, -110..110) -> its bin index, or -1.

    Bin centres sit on that grid, so the nearest bin of an ab inside a gamut cell is a
    rounding then a lookup; only ab outside every gamut cell needs a search.
    """
    cells = np.rint(ab_bins() / GRID_SIZE).astype(np.int64) + AB_RANGE // GRID_SIZE
    table = np.full((2 * AB_RANGE // GRID_SIZE + 1,) * 2, -1, np.int64)
    table[cells[:, 0], cells[:, 1]] = np.arange(len(cells))
    return table


def bin_index(ab):
    """NumPy: index into ab_bins() of the nearest bin of each ab [..., 2] (Lab units)."""
    ab = np.asarray(ab, np.float32)
    table = _cell_to_bin()
    cell = np.clip(np.rint(ab / GRID_SIZE).astype(np.int64) + AB_RANGE // GRID_SIZE,
                   0, table.shape[0] - 1)
    index = np.array(table[cell[..., 0], cell[..., 1]])  # an array even for one ab
    outside = index < 0
    if outside.any():  # rare: beyond the gamut cells
        distance = ((ab[outside][:, None, :] - ab_bins()[None]) ** 2).sum(-1)
        index[outside] = distance.argmin(-1)
    return index


def histogram_counts(ab):
    """Counts of ab samples [..., 2] (Lab units) per quantized bin (nearest centre), int64."""
    return np.bincount(bin_index(ab).ravel(), minlength=len(ab_bins())).astype(np.int64)


def fine_histogram_counts(ab):
    """Counts of ab samples [N, 2] on the fine 2-unit grid: a [128, 128] int64 array."""
    ab = np.asarray(ab, np.float32).reshape(-1, 2)
    counts, _, _ = np.histogram2d(ab[:, 0], ab[:, 1], bins=[FINE_EDGES, FINE_EDGES])
    return counts.astype(np.int64)


def smoothed_prior(counts, sigma=5.0, bins=None):
    """Empirical bin distribution smoothed by a Gaussian over ab distance (Zhang: sigma 5)."""
    bins = ab_bins() if bins is None else bins
    p = np.asarray(counts, np.float64)
    p = p / max(p.sum(), 1.0)
    d2 = ((bins[:, None, :] - bins[None, :, :]) ** 2).sum(-1)
    kernel = np.exp(-d2 / (2 * sigma ** 2))
    kernel /= kernel.sum(axis=1, keepdims=True)
    smoothed = kernel.T @ p
    return smoothed / smoothed.sum()


def rebalancing_weights(prior, lam=0.5):
    """w proportional to 1 / ((1 - lambda) p + lambda / Q), normalised so E_p[w] = 1."""
    prior = np.asarray(prior, np.float64)
    weights = 1.0 / ((1.0 - lam) * prior + lam / len(prior))
    return (weights / (prior * weights).sum()).astype(np.float32)
