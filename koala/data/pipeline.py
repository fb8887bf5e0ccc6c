"""tf.data input pipeline over the shards: (features, ab) batches in [-1, 1].

Sharding: under `strategy.distribute_datasets_from_function`, pass the InputContext: each
input pipeline (worker) reads a disjoint set of shard files when there are at least as many
files as pipelines, else every pipeline reads all files and keeps every N-th example (records
often have a single val shard). The global batch becomes the per-replica batch. Datasets
built without a context carry the DATA auto-shard policy, which works with any file count
under `strategy.experimental_distribute_dataset` (FILE refuses fewer files than workers).

Exact resume: the training stream is a pure function of (files, seed, pipeline): epoch e
shuffles files and examples with seeds derived from (seed, e), and each example's flip comes
from a stateless RNG keyed by its position in the stream. `start_example` skips to a position
by whole epochs (counted from the manifest) plus the rest, so a run resumed at step s reads
exactly the batches an uninterrupted run reads from step s on.
"""

import json
import posixpath

import tensorflow as tf

from koala.data import schema

AUTOTUNE = tf.data.AUTOTUNE
DEFAULT_SHUFFLE_BUFFER = 2048
MAX_OPEN_FILES = 8  # files read at once: deterministic interleave


def _manifest(pattern):
    """manifest.json beside the shards as a dict ({} when absent); any gfile path."""
    path = posixpath.join(posixpath.dirname(pattern), "manifest.json")
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as stream:
        return json.load(stream)


def matching_files(pattern):
    """The shard files of `pattern`, sorted; a one-line error naming it when there are none."""
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no records match {pattern} (build them with `koala records` "
                                f"or `make records MODEL=...`)")
    return files


def _flip(example, index, seed):
    """Mirror L and ab together (not the embedding: it is of the unflipped image), keyed by
    the example's stream position so that a resumed stream flips the same examples."""
    draw = tf.random.stateless_uniform([], seed=tf.stack([tf.constant(seed, tf.int64), index]))
    stacked = tf.concat([example["L"], example["ab"]], axis=-1)
    stacked = tf.cond(draw < 0.5, lambda: tf.reverse(stacked, axis=[1]), lambda: stacked)
    return dict(example, L=stacked[..., :1], ab=stacked[..., 1:])


def _epoch_examples(pattern, files, pipelines, pipeline, by_file):
    """Examples one pipeline reads per epoch: from the manifest's shard counts, else counted."""
    counts = {shard["name"]: shard["examples"] for shard in _manifest(pattern).get("shards", [])}
    names = [posixpath.basename(f) for f in files]
    if all(name in counts for name in names):
        total = sum(counts[name] for name in names)
    else:
        total = sum(1 for _ in tf.data.TFRecordDataset(files))
    return total if by_file else (total - pipeline + pipelines - 1) // pipelines


def _training_stream(files, pattern, shuffle_buffer, seed, pipelines, pipeline, by_file,
                     start_example):
    """Endless serialized examples, epoch by epoch, resumable at `start_example`."""
    seed = int(seed or 0)
    per_epoch = max(1, _epoch_examples(pattern, files, pipelines, pipeline, by_file)) \
        if start_example else 1
    first_epoch, skip = divmod(int(start_example), per_epoch)

    names = tf.constant(files)

    def epoch(index):
        """Epoch `index`: files in a seeded order, examples shuffled in seeded windows of
        `shuffle_buffer` (stateless, so any epoch can be rebuilt from its number alone)."""
        key = tf.random.experimental.stateless_fold_in(tf.constant([seed, 0], tf.int64), index)
        order = tf.argsort(tf.random.stateless_uniform([len(files)], seed=key))
        records = tf.data.Dataset.from_tensor_slices(tf.gather(names, order)).interleave(
            tf.data.TFRecordDataset, cycle_length=min(len(files), MAX_OPEN_FILES),
            num_parallel_calls=AUTOTUNE, deterministic=True)
        if not by_file:
            records = records.shard(pipelines, pipeline)

        def shuffle_window(window, serialized):
            window_key = tf.random.experimental.stateless_fold_in(key, window)
            draws = tf.random.stateless_uniform(tf.shape(serialized)[:1], seed=window_key)
            return tf.gather(serialized, tf.argsort(draws))

        windows = records.batch(shuffle_buffer).enumerate().map(shuffle_window)
        return windows.unbatch()

    stream = tf.data.Dataset.counter(first_epoch).flat_map(epoch).skip(skip)
    return stream.enumerate(start=int(start_example)), seed * 7919 + pipeline


def dataset(pattern, batch_size, training=True, with_embedding=False,
            shuffle_buffer=DEFAULT_SHUFFLE_BUFFER, seed=None, input_context=None, size=None,
            start_example=0):
    """Batches of ({"L": [B,H,W,1]} (+ {"embedding": [B,D]}), ab [B,H,W,2]), float32 in [-1, 1].

    Training: endless, epoch after epoch (files and examples shuffled per epoch, random
    horizontal flips), full batches only (static batch for TPUs, even splits across
    replicas); `start_example` is the position of this pipeline's stream to start at. Not
    training: one pass in file order, no flips, last partial batch kept. `size` fixes static
    H, W (read from the manifest when None).
    """
    files = matching_files(pattern)
    size = size or _manifest(pattern).get("settings", {}).get("size")
    pipelines, pipeline = 1, 0
    if input_context is not None:
        pipelines, pipeline = input_context.num_input_pipelines, input_context.input_pipeline_id
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    by_file = len(files) >= pipelines
    if by_file:
        files = files[pipeline::pipelines]
    if training:
        records, flip_seed = _training_stream(files, pattern, shuffle_buffer, seed, pipelines,
                                              pipeline, by_file, start_example)
        examples = records.map(
            lambda index, s: _flip(schema.parse(s, with_embedding), index, flip_seed),
            num_parallel_calls=AUTOTUNE)
    else:
        records = tf.data.TFRecordDataset(files)
        if not by_file:
            records = records.shard(pipelines, pipeline)
        examples = records.map(lambda s: schema.parse(s, with_embedding),
                               num_parallel_calls=AUTOTUNE)

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
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF if input_context is not None
        else tf.data.experimental.AutoShardPolicy.DATA)
    return batches.with_options(options)
