"""Colorize videos with temporally consistent colours (seeds 001, 003).

Per-frame colorization flickers: the model's ab for the same surface shifts between frames
with noise, compression and small motion. Here ab is smoothed along time at the working
resolution: the previous smoothed ab is warped into the current frame along Farneback
optical flow and blended with the new prediction (an exponential moving average), with the
history trusted less where the warp does not explain the current lightness (occlusions).
A scene cut (large change of the lightness histogram) resets the history.
Flicker is measured after motion compensation (koala.evaluation.motion.warped_flicker): the
previous frame's ab is warped onto the current frame along the flow of L and compared where
the warp explains the lightness. A same-pixel difference would reward a filter that smears colours
in place (zero flow scored better than real flow on that measure) and punish tracking.
"""

import dataclasses
import itertools
import pathlib

import cv2
import numpy as np

from koala import image_io, motion, photo
from koala.photo import recombine, split

FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".m4v": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


@dataclasses.dataclass
class Smoothing:
    """Temporal smoothing settings."""

    momentum: float = 0.85  # weight of the warped history in the EMA
    warp_tolerance: float = 10.0  # L units of warp error at which history is trusted half
    scene_cut: float = 0.35  # total-variation distance between L histograms that resets


def to_gray(lightness):
    """L (Lab units) -> uint8 0..255, what Farneback flow reads."""
    return np.clip(lightness * 2.55, 0, 255).astype(np.uint8)


def farneback_flow(lightness, previous_lightness):
    """Flow from each pixel of the current frame to where it was in the previous one."""
    return cv2.calcOpticalFlowFarneback(to_gray(lightness), to_gray(previous_lightness), None,
                                        0.5, 3, 15, 3, 5, 1.2, 0)


class TemporalSmoother:
    """Keeps the smoothed ab of the previous frame and blends each new prediction into it.

    `flow(lightness, previous_lightness)` estimates the motion (Farneback by default).
    """

    def __init__(self, settings=None, flow=farneback_flow):
        self.settings = settings or Smoothing()
        self.flow = flow
        self.previous = None  # (L, smoothed ab) at working resolution

    def __call__(self, lightness, ab):
        """L [h, w] (Lab units) and predicted ab [h, w, 2] -> smoothed ab [h, w, 2]."""
        lightness = np.asarray(lightness, np.float32)
        if self.previous is None or self.previous[0].shape != lightness.shape or scene_cut(
                to_gray(self.previous[0]), to_gray(lightness), self.settings.scene_cut):
            smoothed = ab
        else:
            previous_lightness, previous_ab = self.previous
            flow = self.flow(lightness, previous_lightness)
            warped_ab = motion.warp(previous_ab, flow)
            error = np.abs(motion.warp(previous_lightness, flow) - lightness)
            trust = self.settings.momentum / (1.0 + error / self.settings.warp_tolerance)
            smoothed = trust[..., None] * warped_ab + (1.0 - trust[..., None]) * ab
        self.previous = (lightness, np.asarray(smoothed, np.float32))
        return self.previous[1]


def scene_cut(previous_gray, gray, threshold):
    """Whether two frames' 32-bin lightness histograms differ by more than `threshold` (TV)."""
    hist = [np.bincount(g.ravel() >> 3, minlength=32) / g.size for g in (previous_gray, gray)]
    return 0.5 * float(np.abs(hist[0] - hist[1]).sum()) > threshold


class FlickerMeter:
    """Mean |ab - previous ab warped along the flow| over the pixels the warp explains.

    `flow` may be given per frame (the true motion of a synthetic clip); otherwise it is
    estimated from L by Farneback.
    """

    def __init__(self):
        self.previous = None
        self.total, self.count = 0.0, 0

    def add(self, lightness, ab, flow=None):
        if self.previous is not None and self.previous[0].shape == lightness.shape:
            previous_lightness, previous_ab = self.previous
            if flow is None:
                flow = farneback_flow(lightness, previous_lightness)
            valid = motion.warp_valid(flow, previous_lightness, lightness)
            total, count = motion.warped_flicker(previous_ab, ab, flow, valid)
            self.total, self.count = self.total + total, self.count + count
        self.previous = (lightness, ab)

    @property
    def value(self):
        return self.total / self.count if self.count else 0.0


def read_frames(path, max_pixels=image_io.DEFAULT_MAX_PIXELS):
    """(frames iterator of RGB uint8, fps, (width, height), frame count as the file says).

    Frames above `max_pixels` (from the container's header) are refused before decoding.
    """
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise OSError(f"{path}: OpenCV cannot open this video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    try:
        image_io.check_pixels(f"{path} (frames)", size[1], size[0], max_pixels)
    except image_io.ImageTooLarge:
        capture.release()
        raise
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


def colorize_frames(frames, colorizer, batch_size=8, smoother=None):
    """RGB or gray frames -> (output RGB uint8, L and raw ab and output ab at working size).

    `smoother` (a TemporalSmoother) makes the colours consistent; None colorizes each frame
    alone. Frames are predicted `batch_size` at a time.
    """
    for batch in _batches(frames, batch_size):
        photos = [split(frame) for frame in batch]
        predicted = colorizer.ab_at_working_scale([photo.lightness for photo in photos])
        for photo, ab in zip(photos, predicted):
            small = cv2.resize(photo.lightness, ab.shape[1::-1], interpolation=cv2.INTER_AREA)
            smoothed = smoother(small, ab) if smoother else ab
            yield recombine(photo.lightness, smoothed), small, ab, smoothed


def colorize_video(source, target, colorizer, batch_size=8, consistent=True, settings=None,
                   progress=None, max_pixels=image_io.DEFAULT_MAX_PIXELS):
    """Colorizes a video file into `target` (same fps, size and frame count).

    Returns {"frames", "fps", "width", "height", "flicker_per_frame", "flicker_consistent"}:
    motion-compensated flicker of the raw per-frame ab and of the output ab (the same flow
    and pixels). `progress(n)` is called every `batch_size` frames with the frames done.
    """
    frames, fps, (width, height), _ = read_frames(source, max_pixels)
    fourcc = cv2.VideoWriter_fourcc(*FOURCC.get(pathlib.Path(target).suffix.lower(), "mp4v"))
    writer = cv2.VideoWriter(str(target), fourcc, fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"{target}: OpenCV cannot write this video format")
    smoother = TemporalSmoother(settings) if consistent else None
    meters = {"per_frame": FlickerMeter(), "consistent": FlickerMeter()}
    count = 0
    try:
        for rgb, small, ab, smoothed in colorize_frames(frames, colorizer, batch_size, smoother):
            flow = None
            if meters["per_frame"].previous is not None:  # one flow for both meters
                flow = farneback_flow(small, meters["per_frame"].previous[0])
            meters["per_frame"].add(small, ab, flow)
            meters["consistent"].add(small, smoothed, flow)
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            count += 1
            if progress and count % batch_size == 0:
                progress(batch_size)
        if progress and count % batch_size:
            progress(count % batch_size)
    finally:
        writer.release()
    return {"frames": count, "fps": fps, "width": width, "height": height,
            "flicker_per_frame": meters["per_frame"].value,
            "flicker_consistent": meters["consistent"].value}


# --------------------------------------------------------------------------- honest measurement

def pan_zoom_clip(photo, frames=16, size=(160, 96), pan=(8.0, 1.0), zoom=0.985):
    """A clip with known motion over a real photo: (true RGB frames, per-frame affines).

    Each frame views the (anti-aliased) photo through a window that pans by `pan` photo
    pixels and zooms in by `zoom` per frame; affine t maps frame pixels to photo pixels.
    """
    height, width = photo.shape[:2]
    out_w, out_h = size
    source = cv2.GaussianBlur(photo, (0, 0), 1.0)
    start = 0.8 * min(width / out_w, height / out_h)  # photo pixels per frame pixel
    truths, affines = [], []
    for t in range(frames):
        scale = start * zoom ** t
        centre_x = width / 2 + pan[0] * (t - frames / 2)
        centre_y = height / 2 + pan[1] * (t - frames / 2)
        affine = np.array([[scale, 0.0, centre_x - scale * out_w / 2],
                           [0.0, scale, centre_y - scale * out_h / 2]])
        truths.append(cv2.warpAffine(source, affine, size,
                                     flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP))
        affines.append(affine)
    return truths, affines


def affine_flow(affine, previous_affine, size):
    """The true flow of a pan_zoom_clip frame: each pixel to where it was one frame before."""
    width, height = size
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float64),
                                 np.arange(height, dtype=np.float64))
    photo_x = affine[0, 0] * grid_x + affine[0, 2]
    photo_y = affine[1, 1] * grid_y + affine[1, 2]
    before_x = (photo_x - previous_affine[0, 2]) / previous_affine[0, 0]
    before_y = (photo_y - previous_affine[1, 2]) / previous_affine[1, 1]
    return np.stack([before_x - grid_x, before_y - grid_y], -1).astype(np.float32)


def gray_frames(truths, noise=2.0, seed=0):
    """The clip as a black-and-white film gives it: the true L, plus grain (8-bit levels)."""
    rng = np.random.default_rng(seed)
    frames = []
    for rgb in truths:
        gray = photo.gray_version(rgb)[..., 0] + rng.normal(0, noise, rgb.shape[:2])
        frames.append(np.clip(np.round(gray), 0, 255).astype(np.uint8))
    return frames


def measure_clip(colorizer, truths, affines, smoother=None, batch_size=8):
    """{"flicker", "ab_error"} of colorizing the gray version of a known-motion clip.

    flicker: motion-compensated along the TRUE flow (not the smoother's estimate), on the
    output frames at full size; ab_error: mean ab distance to the true colours.
    """
    from koala import color  # noqa: PLC0415

    size = truths[0].shape[1::-1]
    meter, errors = FlickerMeter(), []
    outputs = colorize_frames(gray_frames(truths), colorizer, batch_size, smoother)
    for t, (rgb, *_) in enumerate(outputs):
        lab, truth = color.rgb_to_lab_cv2(rgb), color.rgb_to_lab_cv2(truths[t])
        flow = affine_flow(affines[t], affines[t - 1], size) if t else None
        meter.add(truth[..., 0], lab[..., 1:], flow)
        errors.append(float(np.linalg.norm(lab[..., 1:] - truth[..., 1:], axis=-1).mean()))
    return {"flicker": meter.value, "ab_error": float(np.mean(errors))}
