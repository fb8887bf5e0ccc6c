"""Simulated colour hints for training, as Zhang et al. 2017 train their interactive network.

Per photo: the number of hints is geometric (each further hint with probability 1 - p,
p = 1/8, so one photo in eight has none), each a square of side 1-9 pixels whose corner is
drawn from a normal centred in the image (standard deviation a quarter of the side), coloured
with the square's mean true ab (util.add_color_patches_rand_gt of
richzhang/colorization-pytorch). On top, a share of photos gets no hints at all, so the
automatic result keeps being trained. The map is koala.hints' format: [h, w, 3] with a/128,
b/128 and a mask; later squares overwrite earlier ones.
"""

import tensorflow as tf

STOP_PROBABILITY = 0.125  # the geometric distribution's p
MAX_HINTS = 48  # P(more) = (7/8)^48 < 0.2%
SIZES = (1, 9)  # square sides, inclusive
NO_HINT_SHARE = 0.125  # photos forced to have no hints, on top of the geometric 1/8


def simulate(ab, seed, no_hint_share=NO_HINT_SHARE):
    """ab [h, w, 2] (scaled to [-1, 1]) -> a hint map [h, w, 3]; `seed` a stateless seed [2]."""
    seeds = tf.random.experimental.stateless_split(seed, 6)
    shape = tf.shape(ab)
    height, width = shape[0], shape[1]
    # geometric count: the number of Bernoulli(1 - p) successes before the first failure
    keep = tf.random.stateless_uniform([MAX_HINTS], seeds[0]) < 1.0 - STOP_PROBABILITY
    count = tf.reduce_sum(tf.math.cumprod(tf.cast(keep, tf.int32)))
    forced_off = tf.random.stateless_uniform([], seeds[1]) < no_hint_share
    count = tf.where(forced_off, 0, count)
    sizes = tf.random.stateless_uniform([MAX_HINTS], seeds[2], SIZES[0], SIZES[1] + 1, tf.int32)

    def corner(side, key):
        spread = tf.cast(side - sizes + 1, tf.float32)
        drawn = tf.random.stateless_normal([MAX_HINTS], key) * spread / 4.0 + spread / 2.0
        return tf.clip_by_value(tf.cast(drawn, tf.int32), 0, side - sizes)

    rows, cols = corner(height, seeds[3]), corner(width, seeds[4])
    row_index = tf.range(height)[None, :, None]
    col_index = tf.range(width)[None, None, :]
    inside = ((row_index >= rows[:, None, None]) & (row_index < (rows + sizes)[:, None, None])
              & (col_index >= cols[:, None, None]) & (col_index < (cols + sizes)[:, None, None]))
    inside &= (tf.range(MAX_HINTS) < count)[:, None, None]  # [K, h, w]
    weights = tf.cast(inside, tf.float32)
    means = tf.einsum("khw,hwc->kc", weights, ab) / tf.maximum(
        tf.reduce_sum(weights, axis=[1, 2])[:, None], 1.0)
    # the last hint covering a pixel wins: index of the highest k with inside[k]
    order = tf.cast(tf.range(1, MAX_HINTS + 1), tf.float32)[:, None, None]
    last = tf.argmax(weights * order, axis=0)  # [h, w]
    mask = tf.reduce_any(inside, axis=0)
    colours = tf.gather(means, last) * tf.cast(mask, tf.float32)[..., None]
    return tf.concat([colours, tf.cast(mask, tf.float32)[..., None]], axis=-1)


def add_to_batch(features, ab, seed):
    """({"L"}, ab) batch -> ({"L", "hints"}, ab): one simulated hint map per photo."""
    batch = tf.shape(ab)[0]
    seeds = tf.random.experimental.stateless_split(seed, batch)
    hints = tf.map_fn(lambda args: simulate(args[0], args[1]), (ab, seeds),
                      fn_output_signature=tf.float32)
    return {**features, "hints": hints}, ab
