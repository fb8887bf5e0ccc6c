"""The one decoder of a model's raw output into its colour target (model units).

Models end in one of three heads (koala.models.describe(...)["output"]): "regression" (the
target itself), "classification" (Zhang's Q ab bins, decoded by the annealed mean) or
"binned" (per-channel bins, decoded by their softmax-weighted centres). The loop's
validation, the reproduction report and bundles (koala.bundle) all decode here.
"""

import tensorflow as tf

from koala import color


def primary(outputs):
    """The colour output of a model whose outputs may be a dict."""
    if isinstance(outputs, dict):
        return outputs["ab"] if "ab" in outputs else next(iter(outputs.values()))
    return outputs


def to_target(outputs, kind, size, temperature=None):
    """Raw outputs -> the target in model units [B, H, W, 2] at `size` (H, W, or one int).

    `temperature` is the annealed mean's for classification outputs (None: Zhang's 0.38).
    Bilinear upsampling: colour varies slowly, so a head at 1/4 resolution loses little.
    """
    output = primary(outputs)
    if kind == "classification":
        ab = (color.annealed_mean(output) if temperature is None
              else color.annealed_mean(output, float(temperature)))
        output = color.scale_ab(ab)
    elif kind == "binned":
        from koala.models import unet  # noqa: PLC0415 (unet imports keras layers)

        output = unet.from_bins(output)
    else:
        output = tf.cast(output, tf.float32)
    height, width = (size, size) if isinstance(size, int) else size
    if (output.shape[1], output.shape[2]) != (height, width):  # same-size bilinear is exact
        output = tf.image.resize(output, (height, width), method="bilinear")
    return output
