"""Hint propagation: each colour hint corrects the pixels whose learned features resemble
the hinted ones, as attention from every position to the hinted positions.

Why: the hint convolutions of effnet_unet (`_add_hints`) must learn to carry a hint across
an object, and a CPU does not train them long enough (v4: +1.3 dB at 10 hints on
photos/val). The decoder's stride-4 features already know which pixels belong together:
spreading each hint's residual (its colour minus the model's there) by feature similarity
and distance gained +3.1 dB at 10 hints on 50 photos/val before any training (MODEL_CARD.md,
"Colour hints"). The projection of the features, the temperature and the weight of "no hint
applies" are trained with simulated hints (experiments/default.py, "hints_propagation").
The reach is fixed: a hint changes its surroundings, not the far side of the photo (the
app's promise), and on photos/val a reach of 0.3 image heights scored as 1.0 at 10 hints.

With no hints the correction is exactly zero (an empty sum), so the model is the automatic
one. Keys are the `max_keys` hinted cells with the largest hinted share: memory stays
positions x max_keys at any working size.
"""

import math

import keras
import tensorflow as tf
from keras import layers, ops


def pool_hints(hint_map, stride):
    """A hint map (a/128, b/128, mask) -> per stride x stride cell, (the mean hint colour of
    its hinted pixels [B, h, w, 2], the hinted share [B, h, w, 1])."""
    share = ops.average_pool(hint_map[..., 2:], stride, stride)
    mean_ab = ops.average_pool(hint_map[..., :2], stride, stride) / ops.maximum(share, 1e-6)
    return mean_ab, share


@keras.saving.register_keras_serializable(package="koala")
class HintPropagation(layers.Layer):
    """(ab [B, H, W, 2], features [B, H/stride, W/stride, D], hints [B, H, W, 3]) -> ab
    corrected towards the hints (koala.hints' map: a/128, b/128, mask)."""

    def __init__(self, stride=4, max_keys=512, temperature=10.0, reach=0.3, null_logit=-2.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.stride, self.max_keys, self.reach = int(stride), int(max_keys), float(reach)
        self.initial = {"temperature": float(temperature), "null_logit": float(null_logit)}

    def build(self, *shapes):
        def scalar(name, value):
            return self.add_weight(name=name, shape=(),
                                   initializer=keras.initializers.Constant(value))

        # the temperature trained in log space: it stays positive
        self.log_temperature = scalar("log_temperature", math.log(self.initial["temperature"]))
        self.null_logit = scalar("null_logit", self.initial["null_logit"])

    def call(self, ab, features, hint_map):
        hint_ab, share = pool_hints(hint_map, self.stride)
        # the model's mean colour on the same hinted pixels: the residual is hint - model there
        model_ab = ops.average_pool(ab * hint_map[..., 2:], self.stride, self.stride) \
            / ops.maximum(share, 1e-6)
        residual = (hint_ab - model_ab) * ops.cast(share > 0, hint_ab.dtype)

        shape = tf.shape(features)
        batch, height, width = shape[0], shape[1], shape[2]
        cells = height * width
        queries = tf.math.l2_normalize(tf.reshape(features, [batch, cells, -1]), axis=-1)
        rows, cols = tf.meshgrid(tf.range(height), tf.range(width), indexing="ij")
        scale = tf.cast(height, tf.float32)  # distance in units of the image's height
        positions = tf.cast(tf.reshape(tf.stack([rows, cols], -1), [cells, 2]), tf.float32) / scale

        # the hinted cells, largest share first; zero-share padding keeps max_keys available
        pad = self.max_keys
        flat_share = tf.pad(tf.reshape(share, [batch, cells]), [[0, 0], [0, pad]])
        keys_at = tf.math.top_k(flat_share, k=self.max_keys, sorted=False).indices
        present = tf.cast(tf.gather(flat_share, keys_at, batch_dims=1) > 0, tf.float32)
        keys_at = tf.minimum(keys_at, cells - 1)  # padding indices point at a real cell
        keys = tf.gather(queries, keys_at, batch_dims=1)  # [B, K, D]
        key_residual = tf.gather(tf.reshape(residual, [batch, cells, 2]), keys_at, batch_dims=1)
        key_positions = tf.gather(positions, keys_at)  # [B, K, 2]

        similarity = tf.einsum("bnd,bkd->bnk", queries, keys)
        distance2 = tf.reduce_sum(
            tf.square(positions[None, :, None, :] - key_positions[:, None, :, :]), -1)
        logits = (tf.exp(self.log_temperature) * (similarity - 1.0)
                  - distance2 / (2.0 * self.reach ** 2))
        weights = tf.exp(logits) * present[:, None, :]  # [B, N, K]; 0 where no hint
        total = tf.reduce_sum(weights, -1, keepdims=True) + tf.exp(self.null_logit)
        delta = tf.einsum("bnk,bkc->bnc", weights, key_residual) / total
        delta = tf.reshape(delta, [batch, height, width, 2])
        return ab + tf.image.resize(delta, tf.shape(ab)[1:3], method="bilinear")

    def compute_output_shape(self, ab_shape, features_shape, hint_map_shape):
        return ab_shape

    def get_config(self):
        return {**super().get_config(), "stride": self.stride, "max_keys": self.max_keys,
                "reach": self.reach, **self.initial}
