"""The one TFRecord schema of Koala: a tf.train.Example per image.

Fields: `id` (bytes: relative path or tfds key), `height`, `width` (int64), `L` (bytes: uint8
raw H*W, round(L * 255 / 100)), `ab` (bytes: uint8 raw H*W*2, clip(round(ab) + 128, 0, 255)),
and optionally `embedding` (bytes: float16 raw) with `embedding_dim` (int64).

Why uint8 and not float16: at 128 px an Example is 49,291 bytes with uint8 L/ab and 98,443
bytes with float16 (measured; x2 on disk and in the input pipeline), while the quantization
error of uint8 (L: +-0.196, a/b: +-0.5 Lab units) is below what a person can see (a JND
in Lab is about 2.3) and below the writer's Lab error (cv2 vs skimage <= 0.33).
"""

import numpy as np
import tensorflow as tf

from koala import color

L_LEVELS = 255.0 / 100.0  # uint8 steps per Lab L unit
AB_OFFSET = 128


def quantize_lab(lab):
    """float Lab [H, W, 3] -> (L uint8 [H, W], ab uint8 [H, W, 2]) as the schema stores them."""
    lightness = np.clip(np.round(lab[..., 0] * L_LEVELS), 0, 255).astype(np.uint8)
    ab = np.clip(np.round(lab[..., 1:]) + AB_OFFSET, 0, 255).astype(np.uint8)
    return lightness, ab


def dequantize_lab(lightness, ab):
    """The inverse of quantize_lab: uint8 arrays -> float32 Lab [H, W, 3] (Lab units)."""
    lab_l = lightness.astype(np.float32) / L_LEVELS
    lab_ab = ab.astype(np.float32) - AB_OFFSET
    return np.concatenate([lab_l[..., None], lab_ab], axis=-1)


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def encode(example_id, lightness, ab, embedding=None):
    """Serialize one image (uint8 L [H, W], uint8 ab [H, W, 2]) to tf.train.Example bytes."""
    height, width = lightness.shape
    feature = {
        "id": _bytes(example_id.encode("utf-8")),
        "height": _int(height),
        "width": _int(width),
        "L": _bytes(np.ascontiguousarray(lightness, np.uint8).tobytes()),
        "ab": _bytes(np.ascontiguousarray(ab, np.uint8).tobytes()),
    }
    if embedding is not None:
        embedding = np.asarray(embedding, np.float16).reshape(-1)
        feature["embedding"] = _bytes(embedding.tobytes())
        feature["embedding_dim"] = _int(embedding.size)
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    # deterministic: map entries sorted by key; otherwise their order varies between
    # processes (hash seeds) and a resumed build would not equal a clean one byte for byte.
    return example.SerializeToString(deterministic=True)


def _spec(with_embedding):
    spec = {
        "id": tf.io.FixedLenFeature([], tf.string),
        "height": tf.io.FixedLenFeature([], tf.int64),
        "width": tf.io.FixedLenFeature([], tf.int64),
        "L": tf.io.FixedLenFeature([], tf.string),
        "ab": tf.io.FixedLenFeature([], tf.string),
    }
    if with_embedding:
        spec["embedding"] = tf.io.FixedLenFeature([], tf.string)
        spec["embedding_dim"] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def parse(serialized, with_embedding=False):
    """TF op: one serialized Example -> dict of tensors in model units.

    Returns {"id": string, "L": float32 [H, W, 1] in [-1, 1], "ab": float32 [H, W, 2] in
    [-1, 1]} plus "embedding" float32 [D] when asked.
    """
    raw = tf.io.parse_single_example(serialized, _spec(with_embedding))
    height, width = tf.cast(raw["height"], tf.int32), tf.cast(raw["width"], tf.int32)
    lightness = tf.cast(tf.io.decode_raw(raw["L"], tf.uint8), tf.float32) / L_LEVELS
    ab = tf.cast(tf.io.decode_raw(raw["ab"], tf.uint8), tf.float32) - AB_OFFSET
    out = {
        "id": raw["id"],
        "L": color.scale_l(tf.reshape(lightness, tf.stack([height, width, 1]))),
        "ab": color.scale_ab(tf.reshape(ab, tf.stack([height, width, 2]))),
    }
    if with_embedding:
        embedding = tf.cast(tf.io.decode_raw(raw["embedding"], tf.float16), tf.float32)
        out["embedding"] = tf.reshape(
            embedding, tf.stack([tf.cast(raw["embedding_dim"], tf.int32)]))
    return out


def parse_numpy(serialized):
    """Decode one Example in NumPy (tests, tools): dict with uint8 L, ab and float Lab."""
    example = tf.train.Example.FromString(serialized)
    feature = example.features.feature
    height, width = feature["height"].int64_list.value[0], feature["width"].int64_list.value[0]
    lightness = np.frombuffer(feature["L"].bytes_list.value[0], np.uint8).reshape(height, width)
    ab = np.frombuffer(feature["ab"].bytes_list.value[0], np.uint8).reshape(height, width, 2)
    out = {"id": feature["id"].bytes_list.value[0].decode("utf-8"), "L": lightness, "ab": ab,
           "lab": dequantize_lab(lightness, ab)}
    if "embedding" in feature:
        out["embedding"] = np.frombuffer(feature["embedding"].bytes_list.value[0], np.float16)
    return out
