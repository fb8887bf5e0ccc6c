"""tf.data input pipeline over the shards: (features, ab) batches in [-1, 1].

Sharding is by FILE: each input pipeline (worker) reads a disjoint set of shard files,
which is why `koala records` writes many shards. Under
`strategy.distribute_datasets_from_function`, pass the InputContext: files are split by
input pipeline here and the global batch becomes the per-replica batch. Under
`strategy.experimental_distribute_dataset`, the FILE auto-shard option set below does it.
"""

import json
import pathlib

import tensorflow as tf

from koala.data import schema

AUTOTUNE = tf.data.AUTOTUNE
DEFAULT_SHUFFLE_BUFFER = 2048


def _recorded_size(pattern):
    """The working size from manifest.json beside the shards (static shapes), else None."""
    manifest = pathlib.Path(pattern).parent / "manifest.json"
    if manifest.is_file():
        return json.loads(manifest.read_text())["settings"]["size"]
    return None


def _random_flip(example, seed):
    """Mirror L, ab (and nothing else: the embedding is of the unflipped image) together."""
    stacked = tf.concat([example["L"], example["ab"]], axis=-1)
    stacked = tf.image.random_flip_left_right(stacked, seed=seed)
    return dict(example, L=stacked[..., :1], ab=stacked[..., 1:])


def dataset(pattern, batch_size, training=True, with_embedding=False,
            shuffle_buffer=DEFAULT_SHUFFLE_BUFFER, seed=None, input_context=None, size=None):
    """Batches of ({"L": [B,H,W,1]} (+ {"embedding": [B,D]}), ab [B,H,W,2]), float32 in [-1, 1].

    Training: files and examples shuffled, random horizontal flips, full batches only
    (drop_remainder: static batch size for TPUs and even splits across replicas). Not
    training: file order kept, no flips, last partial batch kept. The dataset does not
    repeat; call .repeat() for step-based loops. `size` fixes static H, W (read from the
    manifest when None).
    """
    size = size or _recorded_size(pattern)
    files = tf.data.Dataset.list_files(pattern, shuffle=False)
    if input_context is not None:
        files = files.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    if training:
        files = files.shuffle(1024, seed=seed, reshuffle_each_iteration=True)
    records = files.interleave(tf.data.TFRecordDataset, cycle_length=AUTOTUNE,
                               num_parallel_calls=AUTOTUNE, deterministic=not training)
    if training:
        records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    examples = records.map(lambda s: schema.parse(s, with_embedding), num_parallel_calls=AUTOTUNE,
                           deterministic=not training)
    if training:
        examples = examples.map(lambda e: _random_flip(e, seed), num_parallel_calls=AUTOTUNE)

    def to_pair(example):
        lightness, ab = example["L"], example["ab"]
        if size:
            lightness = tf.ensure_shape(lightness, [size, size, 1])
            ab = tf.ensure_shape(ab, [size, size, 2])
        features = {"L": lightness}
        if with_embedding:
            features["embedding"] = example["embedding"]
        return features, ab

    batches = examples.map(to_pair, num_parallel_calls=AUTOTUNE).batch(
        batch_size, drop_remainder=training).prefetch(AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.FILE
    return batches.with_options(options)
