"""Colorize photos of any size: the model runs small, the photo keeps its own lightness.

The model sees L resized to its working size (about size^2 pixels, aspect kept, sides a
multiple of the model's stride); its ab is upsampled bilinearly to the full resolution and
recombined with the input's full-resolution L, so no detail is lost (seed 001). The colour
science lives in koala.photo; the model runs through LiteRT when the bundle carries a
.tflite and through Keras otherwise (koala.inference.runtime), so this module never imports
TensorFlow itself: a cold `koala colorize` on the default model does not pay for it."""

import functools
import pathlib

import cv2
import numpy as np

from koala import hints as hints_lib
from koala import image_io
from koala import vividness as vividness_lib
from koala.inference import png
from koala.inference import runtime as runtime_lib
from koala.image_io import UnreadableImage, read_image, write_image
from koala.photo import DEFAULT_STRIDE, ab_bins, has_colour, recombine, split, working_shape


class Colorizer:
    """A loaded model plus the any-size pipeline around it (keep one to stay warm).

    Fitting to the working size follows the bundle's "fit": "aspect" (default: about
    size^2 pixels, aspect kept, as for models trained on crops) or "pad" (long side to
    size, the rest padded white, as Deep Koalarization trains); models with a fixed input
    shape always get "pad" at that shape.
    engine: "auto" (LiteRT when the bundle carries a model.tflite converted from its
    model.keras, else Keras), "litert" or "keras". `bundle` is the koala.bundle.Bundle on
    Keras and a runtime.BundleInfo (meta, path, name, size) on LiteRT.
    """

    def __init__(self, model="default", size=None, engine="auto"):
        self.runtime, self.bundle = runtime_lib.load(model, engine)
        self.size = int(size or self.bundle.size)
        self.stride = int(self.bundle.meta.get("stride", DEFAULT_STRIDE))
        self.fit = self.bundle.meta.get("fit", "aspect")
        self.fixed_shape = self.runtime.fixed_shape
        if self.fixed_shape:
            self.fit = "pad"

    @property
    def takes_hints(self):
        """Whether the model takes colour hints (koala.hints)."""
        return self.runtime.takes_hints

    def model_ab(self, lightness, vividness=None, hint_maps=None):
        """L [N, h, w, 1] in Lab units at working size -> ab [N, h, w, 2] in Lab units
        (at `vividness`, for models with that control: koala.vividness); `hint_maps`
        [N, h, w, 3] for a hint model."""
        return self.runtime.ab(lightness, vividness, hint_maps)

    def working_hints(self, hints, full_shape, box, working_shape_):
        """Checked hints in full-resolution coordinates -> the hint map at the working shape
        (inside the content box `box`; zero on the padding of a "pad" fit)."""
        top, bottom, left, right = box
        hint_map = np.zeros(working_shape_ + (hints_lib.CHANNELS,), np.float32)
        height, width = full_shape
        hint_map[top:bottom, left:right] = hints_lib.hint_map(hints, width, height,
                                                              right - left, bottom - top)
        return hint_map

    def check_hints(self, hints, width, height, where="hints"):
        """Raw hints -> checked ones (koala.hints.check); a model without the hint input
        refuses any (HintError), so hints are never silently ignored."""
        checked = hints_lib.check(hints, width, height, where)
        if checked and not self.takes_hints:
            raise hints_lib.HintError(
                f"{where}: the model {self.bundle.name} takes no colour hints (use a hint "
                "model, such as the shipped default)")
        return checked

    def small_lightness(self, full_lightness):
        """Full-res L -> (L at the working shape, the content box (top, bottom, left, right))."""
        height, width = full_lightness.shape
        if self.fit != "pad":
            h, w = working_shape(height, width, self.size, self.stride)
            return cv2.resize(full_lightness, (w, h), interpolation=cv2.INTER_AREA), (0, h, 0, w)
        size_h, size_w = self.fixed_shape or (self.size, self.size)
        scale = min(size_h / height, size_w / width)
        h, w = max(1, round(height * scale)), max(1, round(width * scale))
        canvas = np.full((size_h, size_w), 100.0, np.float32)  # white, as in training
        top, left = (size_h - h) // 2, (size_w - w) // 2
        canvas[top:top + h, left:left + w] = cv2.resize(full_lightness, (w, h),
                                                        interpolation=cv2.INTER_AREA)
        return canvas, (top, top + h, left, left + w)

    def ab_at_working_scale(self, lightness_maps, vividness=None, hints=None):
        """Full-res L maps -> ab over each one's content at working scale; same shapes batch.

        vividness: 0 (most accurate) .. 1 (most vivid), None for the model's default.
        hints: per map, checked hints (koala.hints.check) or None."""
        small = [self.small_lightness(lightness) for lightness in lightness_maps]
        hints = hints or [None] * len(small)
        results = [None] * len(small)
        by_shape = {}
        for index, (item, _) in enumerate(small):
            by_shape.setdefault(item.shape, []).append(index)
        for indices in by_shape.values():
            batch = np.stack([small[i][0] for i in indices])[..., None]
            hint_maps = None
            if any(hints[i] for i in indices):
                hint_maps = np.stack([
                    self.working_hints(hints[i] or [], lightness_maps[i].shape, small[i][1],
                                       small[i][0].shape) for i in indices])
            for i, ab in zip(indices, self.model_ab(batch, vividness, hint_maps)):
                top, bottom, left, right = small[i][1]
                results[i] = ab[top:bottom, left:right]
        return results

    def colorize_many(self, images, keep_color=False, reference=None, vividness=None,
                      hints=None):
        """Arrays -> RGB(A) arrays (see `colorize`); predictions batched by working shape.
        `hints`: per image, a list of hints (koala.hints) or None."""
        hints = hints or [None] * len(images)
        checked = [self.check_hints(h, np.shape(image)[1], np.shape(image)[0]) if h else None
                   for image, h in zip(images, hints)]
        photos = [split(image) for image in images]
        todo = [i for i, p in enumerate(photos)
                if not (keep_color and p.rgb is not None and has_colour(p.rgb))]
        predicted = self.ab_at_working_scale([photos[i].lightness for i in todo], vividness,
                                             [checked[i] for i in todo])
        outputs = [np.asarray(image) for image in images]  # kept colour photos pass through
        for i, ab in zip(todo, predicted):
            photo = photos[i]
            if reference is not None:
                ab = self._guided(ab, photo.lightness, reference)
            rgb = recombine(photo.lightness, ab, photo.dtype)
            outputs[i] = rgb if photo.alpha is None else np.dstack([rgb, photo.alpha])
        return outputs

    def palette(self, image, x, y, hints=None, count=8):
        """The colours the model finds most likely at input pixel (x, y), under `hints`:
        [{"rgb": "#rrggbb", "ab": [a, b], "probability": p}] with the photo's own lightness
        there, most likely first (Zhang et al. 2017's suggested colours); [] for a model
        without the bin distribution."""
        height, width = np.shape(image)[:2]
        checked = self.check_hints(hints, width, height)
        hints_lib.check([{"x": x, "y": y, "ab": [0, 0]}], width, height, "the palette point")
        photo = split(image)
        small, box = self.small_lightness(photo.lightness)
        hint_map = self.working_hints(checked, photo.lightness.shape, box, small.shape)
        bins = self.runtime.bins(small[..., None], hint_map)
        if bins is None:
            return []
        stride = small.shape[0] / bins.shape[0]
        top, bottom, left, right = (int(round(v / stride)) for v in box)
        choices = hints_lib.palette(bins[top:bottom, left:right], ab_bins(), x, y, width,
                                    height, count)
        here = photo.lightness[int(round(y)), int(round(x))]
        out = []
        for a, b, probability in choices:
            rgb = recombine(np.full((1, 1), here, np.float32), np.array([[[a, b]]], np.float32))
            out.append({"rgb": "#" + "".join(f"{int(v):02x}" for v in rgb[0, 0]),
                        "ab": [a, b], "probability": probability})
        return out

    def _guided(self, ab, full_lightness, reference):
        from koala.inference import reference as reference_lib  # noqa: PLC0415 (optional path)

        small = cv2.resize(full_lightness, ab.shape[1::-1], interpolation=cv2.INTER_AREA)
        return reference_lib.guide(ab, small, reference)


@functools.lru_cache(maxsize=4)
def _cached_colorizer(model, size):
    return Colorizer(model, size)


def colorize(image, model="default", size=None, keep_color=False, reference=None,
             max_pixels=image_io.DEFAULT_MAX_PIXELS, vividness=None, hints=None):
    """Colorize one photo at full resolution.

    image: a path or an array (gray, RGB or RGBA; uint8, uint16 or float in [0, 1]).
    model: "default", a bundle/workdir path, a loaded Bundle or a Colorizer; loaded models
    are cached, so repeated calls are warm. size: working size (default: the bundle's).
    keep_color: colour inputs are returned as they are (sepia and gray ones are colorized).
    reference: path or RGB array of a similar colour photo to take colours from (seed 003).
    max_pixels: larger inputs are refused (image_io.ImageTooLarge), files before decoding.
    vividness: 0 (most accurate) .. 1 (most vivid); None: the model's default, chosen on
    validation photos (koala.vividness). Models without the control ignore it.
    hints: colour hints, [{"x": column, "y": row, "ab": [a, b] or "rgb": [r, g, b] or
    "#rrggbb", "size": side}, ...] in the input's pixel coordinates (koala.hints); None or
    [] gives the automatic result. A bad hint raises koala.hints.HintError.
    Returns RGB (RGBA if the input had alpha), uint16 for 16-bit input, else uint8; the
    output's L equals the input's L within rounding.
    """
    vividness_lib.check(vividness)
    where = "the input array"
    if isinstance(image, (str, pathlib.Path)):
        where, image = str(image), read_image(image, max_pixels)
    else:
        image_io.check_pixels(where, *np.shape(image)[:2], max_pixels)
    if isinstance(reference, (str, pathlib.Path)):
        reference = read_image(reference, max_pixels)
    if isinstance(model, Colorizer):
        colorizer = model
    elif runtime_lib.is_keras_bundle(model):
        colorizer = Colorizer(model, size)
    else:
        colorizer = _cached_colorizer(str(model), size)
    colorizer.check_hints(hints, np.shape(image)[1], np.shape(image)[0], f"{where}: hints")
    return colorizer.colorize_many([image], keep_color, reference, vividness, [hints])[0]


# --------------------------------------------------------------------------- many files

def write_output(path, image):
    """A colorized image -> file: PNG through the band encoder on every core (16% smaller
    files than OpenCV's default; see koala.inference.png), other formats via image_io."""
    if pathlib.Path(path).suffix.lower() == ".png":
        png.write(path, image)
    else:
        write_image(path, image)


def _read_or_error(path, max_pixels):
    try:
        return read_image(path, max_pixels), None
    except UnreadableImage as error:
        return None, str(error)


def colorize_files(pairs, colorizer, batch_size=8, max_pixels=image_io.DEFAULT_MAX_PIXELS,
                   hints_of=None, **options):
    """Colorizes image files [(source, target)] in batches; yields (source, error or None).

    A file that cannot be read (or is above `max_pixels`), whose hints are bad, or that
    cannot be written is reported and skipped; the others complete.
    `hints_of(source)`: that photo's raw hints (koala.hints) or None.
    `options` are those of `colorize` (keep_color, reference as an array).
    """
    for start in range(0, len(pairs), max(1, batch_size)):
        chunk = pairs[start:start + max(1, batch_size)]
        loaded = [_read_or_error(source, max_pixels) for source, _ in chunk]
        hints = [hints_of(source) if hints_of else None for source, _ in chunk]
        for i, (image, _) in enumerate(loaded):
            if image is not None and hints[i]:
                try:
                    colorizer.check_hints(hints[i], image.shape[1], image.shape[0],
                                          f"{chunk[i][0]}: hints")
                except hints_lib.HintError as error:
                    loaded[i] = (None, str(error))
        good = [i for i, (image, _) in enumerate(loaded) if image is not None]
        try:
            results = dict(zip(good, colorizer.colorize_many(
                [loaded[i][0] for i in good], hints=[hints[i] for i in good], **options)))
        except ValueError:  # one odd image in the batch: redo one by one to name it
            results = {}
            for i in good:
                try:
                    results[i] = colorizer.colorize_many([loaded[i][0]], hints=[hints[i]],
                                                         **options)[0]
                except ValueError as error:
                    loaded[i] = (None, f"{chunk[i][0]}: {error}")
        for i, (source, target) in enumerate(chunk):
            error = loaded[i][1]
            if error is None:
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    write_output(target, results[i])
                except OSError as write_error:
                    error = f"{target}: {write_error}"
            yield source, error

