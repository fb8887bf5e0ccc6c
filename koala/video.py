"""Colorize videos with temporally consistent colours (seeds 001, 003).

Per-frame colorization flickers: the model's ab for the same surface shifts between frames
with noise, compression and small motion. Here ab is smoothed along time at the working
resolution: the previous smoothed ab is warped into the current frame along Farneback
optical flow and blended with the new prediction (an exponential moving average), with the
history trusted less where the warp does not explain the current lightness (occlusions).
A scene cut (large change of the lightness histogram) resets the history.
Flicker is measured as the mean |delta ab| between consecutive frames over static pixels,
for the smoothed ab and for the raw per-frame ab of the same run.
"""

import dataclasses
import itertools
import pathlib

import cv2
import numpy as np

from koala.colorize import recombine, split

FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".m4v": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
STATIC_L = 1.0  # a pixel is static when its L changes by less than this between frames


@dataclasses.dataclass
class Smoothing:
    """Temporal smoothing settings."""

    momentum: float = 0.85  # weight of the warped history in the EMA
    warp_tolerance: float = 10.0  # L units of warp error at which history is trusted half
    scene_cut: float = 0.35  # total-variation distance between L histograms that resets


class TemporalSmoother:
    """Keeps the smoothed ab of the previous frame and blends each new prediction into it."""

    def __init__(self, settings=None):
        self.settings = settings or Smoothing()
        self.previous = None  # (L uint8, smoothed ab) at working resolution

    def __call__(self, lightness, ab):
        """L [h, w] (Lab units) and predicted ab [h, w, 2] -> smoothed ab [h, w, 2]."""
        gray = np.clip(lightness * 2.55, 0, 255).astype(np.uint8)
        if self.previous is None or self.previous[0].shape != gray.shape or scene_cut(
                self.previous[0], gray, self.settings.scene_cut):
            smoothed = ab
        else:
            previous_gray, previous_ab = self.previous
            flow = cv2.calcOpticalFlowFarneback(gray, previous_gray, None, 0.5, 3, 15, 3, 5,
                                                1.2, 0)
            height, width = gray.shape
            grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32),
                                         np.arange(height, dtype=np.float32))
            map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
            warped_ab = cv2.remap(previous_ab, map_x, map_y, cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
            warped_gray = cv2.remap(previous_gray, map_x, map_y, cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)
            error = np.abs(warped_gray.astype(np.float32) - gray) / 2.55
            trust = self.settings.momentum / (1.0 + error / self.settings.warp_tolerance)
            smoothed = trust[..., None] * warped_ab + (1.0 - trust[..., None]) * ab
        self.previous = (gray, smoothed.astype(np.float32))
        return self.previous[1]


def scene_cut(previous_gray, gray, threshold):
    """Whether two frames' 32-bin lightness histograms differ by more than `threshold` (TV)."""
    hist = [np.bincount(g.ravel() >> 3, minlength=32) / g.size for g in (previous_gray, gray)]
    return 0.5 * float(np.abs(hist[0] - hist[1]).sum()) > threshold


class FlickerMeter:
    """Mean |delta ab| between consecutive frames over pixels whose L is static."""

    def __init__(self):
        self.previous = None
        self.total, self.count = 0.0, 0

    def add(self, lightness, ab):
        if self.previous is not None and self.previous[0].shape == lightness.shape:
            static = np.abs(lightness - self.previous[0]) < STATIC_L
            if static.any():
                self.total += float(np.abs(ab - self.previous[1])[static].sum()) / 2.0
                self.count += int(static.sum())
        self.previous = (lightness, ab)

    @property
    def value(self):
        return self.total / self.count if self.count else 0.0


def read_frames(path):
    """(frames iterator of RGB uint8, fps, (width, height), frame count as the file says)."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise OSError(f"{path}: OpenCV cannot open this video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))

    def frames():
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()

    return frames(), fps, size, count


def _batches(iterable, size):
    iterator = iter(iterable)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def colorize_video(source, target, colorizer, batch_size=8, consistent=True, settings=None,
                   progress=None):
    """Colorizes a video file into `target` (same fps, size and frame count).

    Returns {"frames", "fps", "width", "height", "flicker_per_frame", "flicker_consistent"}:
    flicker of the raw per-frame ab and of the smoothed ab over the same static pixels.
    `progress(n)` is called after each batch with the number of frames done in it.
    """
    frames, fps, (width, height), _ = read_frames(source)
    fourcc = cv2.VideoWriter_fourcc(*FOURCC.get(pathlib.Path(target).suffix.lower(), "mp4v"))
    writer = cv2.VideoWriter(str(target), fourcc, fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"{target}: OpenCV cannot write this video format")
    smoother = TemporalSmoother(settings)
    meters = {"per_frame": FlickerMeter(), "consistent": FlickerMeter()}
    count = 0
    try:
        for batch in _batches(frames, batch_size):
            photos = [split(frame) for frame in batch]
            predicted = colorizer.predict_ab([photo.lightness for photo in photos])
            for photo, ab in zip(photos, predicted):
                small = cv2.resize(photo.lightness, ab.shape[1::-1], interpolation=cv2.INTER_AREA)
                smoothed = smoother(small, ab) if consistent else ab
                meters["per_frame"].add(small, ab)
                meters["consistent"].add(small, smoothed)
                rgb = recombine(photo.lightness, smoothed)
                writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            count += len(batch)
            if progress:
                progress(len(batch))
    finally:
        writer.release()
    return {"frames": count, "fps": fps, "width": width, "height": height,
            "flicker_per_frame": meters["per_frame"].value,
            "flicker_consistent": meters["consistent"].value}
