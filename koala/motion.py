"""Motion compensation between video frames: bring the previous frame onto the current one
along an optical flow, and say which pixels that explains.

Shared by the temporal smoother (koala.inference.video) and the flicker it is judged by:
flicker is measured after motion compensation, so colour that moves with its surface counts
zero and only colour that changes on the surface counts.
"""

import cv2
import numpy as np

WARP_MATCH_L = 3.0  # L units: a warped pixel whose lightness differs more is occluded


def warp(image, flow):
    """`image` sampled at x + flow(x) (bilinear): the previous frame brought onto the current.

    flow [H, W, 2] (dx, dy) points from each pixel of the current frame to where it was in
    the previous one, as cv2.calcOpticalFlowFarneback(current, previous) gives it.
    """
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32),
                                 np.arange(height, dtype=np.float32))
    return cv2.remap(np.asarray(image, np.float32), grid_x + flow[..., 0], grid_y + flow[..., 1],
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def warp_valid(flow, previous_lightness, lightness, match=WARP_MATCH_L):
    """Pixels the warp explains: their source lies inside the previous frame and the warped
    lightness matches the current one within `match` L units (not occluded)."""
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width), np.arange(height))
    source_x, source_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
    inside = (source_x >= 0) & (source_x <= width - 1) & (source_y >= 0) & (source_y <= height - 1)
    return inside & (np.abs(warp(previous_lightness, flow) - lightness) < match)


def warped_flicker(previous_ab, ab, flow, valid):
    """(sum of |ab - warped previous ab| per channel, pixel count) over `valid` pixels.

    Flicker after motion compensation: colour that stays on its surface as it moves counts
    zero; only colour that changes on the surface counts (a same-pixel difference would
    reward smearing colours in place and punish honest tracking of motion).
    """
    difference = np.abs(np.asarray(ab, np.float32) - warp(previous_ab, flow))[valid]
    return float(difference.sum()) / 2.0, int(valid.sum())
