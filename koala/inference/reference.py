"""Reference-guided colorization (seed 003), in the spirit of Welsh et al. (2002).

Welsh, Ashikhmin and Mueller transfer colour from a reference photo to a gray one by
matching each gray pixel to the reference pixel with the most similar luminance and
neighbourhood statistics (after remapping the reference luminance to the target's mean and
spread), then copying its chroma. Here the features are L, the local mean and standard
deviation of L over 5x5 and 11x11 windows (texture) and a weak position term (similar
photos tend to share layout); matching uses a k-d tree over a jittered sample of reference
pixels. The transferred ab is blended with the model's prediction, weighted by how close
the match is, so unmatched regions keep the model's colours.
"""

import cv2
import numpy as np

SAMPLES = 4096  # reference pixels kept for matching (Welsh et al. used ~200 on a jittered grid)
NEIGHBOURS = 4
MATCH_SCALE = 6.0  # feature distance (L units) at which a match is trusted 1/e
POSITION_WEIGHT = 15.0  # feature units spanned by the image width/height


def _features(lightness):
    """L [h, w] -> [h, w, 7]: L, local means and spreads at two scales, x and y."""
    height, width = lightness.shape
    columns = [lightness]
    for window in (5, 11):
        mean = cv2.blur(lightness, (window, window))
        square = cv2.blur(lightness * lightness, (window, window))
        columns += [mean, np.sqrt(np.maximum(square - mean * mean, 0.0))]
    y, x = np.meshgrid(np.linspace(0, POSITION_WEIGHT, height, dtype=np.float32),
                       np.linspace(0, POSITION_WEIGHT, width, dtype=np.float32), indexing="ij")
    return np.stack(columns + [x, y], axis=-1)


def _jittered_sample(height, width, count, rng):
    """Flat indices of about `count` pixels, one per cell of a regular grid, jittered."""
    step = max(1.0, np.sqrt(height * width / count))
    ys = np.arange(0, height, step)
    xs = np.arange(0, width, step)
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    y = np.minimum(grid_y + rng.uniform(0, step, grid_y.shape), height - 1).astype(np.int64)
    x = np.minimum(grid_x + rng.uniform(0, step, grid_x.shape), width - 1).astype(np.int64)
    return (y * width + x).ravel()


def reference_lab(reference, pixels):
    """Reference RGB(A) array (uint8/uint16/float) -> float32 Lab with about `pixels` pixels."""
    rgb = np.asarray(reference)[..., :3]
    rgb = rgb.astype(np.float32) / (np.iinfo(rgb.dtype).max if rgb.dtype.kind == "u" else 1.0)
    scale = min(1.0, np.sqrt(pixels / (rgb.shape[0] * rgb.shape[1])))
    if scale < 1.0:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)


def transfer(lightness, reference, samples=SAMPLES, seed=0):
    """Welsh-style colour transfer: L [h, w] -> (ab [h, w, 2], match distance [h, w])."""
    from scipy.spatial import cKDTree  # noqa: PLC0415 (only this path needs SciPy)

    lightness = np.asarray(lightness, np.float32)
    lab = reference_lab(reference, lightness.size)
    ref_l = lab[..., 0]
    # Luminance remapping: the reference's L gets the target's mean and spread.
    ref_l = (ref_l - ref_l.mean()) * (lightness.std() / max(ref_l.std(), 1e-3)) + lightness.mean()
    keep = _jittered_sample(*ref_l.shape, samples, np.random.default_rng(seed))
    ref_features = _features(ref_l.astype(np.float32)).reshape(-1, 7)[keep]
    ref_ab = lab[..., 1:].reshape(-1, 2)[keep]
    distance, index = cKDTree(ref_features).query(_features(lightness).reshape(-1, 7),
                                                  k=NEIGHBOURS)
    weights = 1.0 / (distance + 1e-3)
    ab = (ref_ab[index] * weights[..., None]).sum(1) / weights.sum(1, keepdims=True)
    nearest = distance[:, 0].reshape(lightness.shape)
    return ab.reshape(*lightness.shape, 2).astype(np.float32), nearest


def guide(ab_model, lightness, reference, strength=0.8):
    """Blends the model's ab [h, w, 2] with colours transferred from `reference` (RGB array).

    Each pixel takes strength * exp(-(d / MATCH_SCALE)^2) of the transferred ab, where d
    is its best match distance, and the rest from the model.
    """
    ab_reference, distance = transfer(lightness, reference)
    weight = strength * np.exp(-np.square(distance / MATCH_SCALE))[..., None]
    return (weight * ab_reference + (1.0 - weight) * ab_model).astype(np.float32)
