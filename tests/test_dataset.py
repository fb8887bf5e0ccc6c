"""koala.data.dataset: shapes, ranges, flips, embeddings and per-pipeline file sharding."""

import numpy as np
import pytest
import tensorflow as tf

import koala.data
from koala.data import images, schema


def write_shards(folder, count, per_shard, size=8, embedding_dim=None):
    """Shards of asymmetric images: the left half dark, the right half bright and red."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[:, size // 2:] = (250, 40, 40)
    lightness, ab = images.rgb_to_lab_uint8(rgb)
    for shard in range(count):
        with tf.io.TFRecordWriter(str(folder / f"train-{shard:05d}-of-{count:05d}.tfrecord")) as w:
            for i in range(per_shard):
                embedding = (None if embedding_dim is None
                             else np.full(embedding_dim, shard * per_shard + i, np.float32))
                w.write(schema.encode(f"s{shard}/{i}", lightness, ab, embedding))
    return str(folder / "train-*.tfrecord")


def test_eval_batches_have_the_right_shapes_and_ranges(tmp_path):
    pattern = write_shards(tmp_path, count=2, per_shard=5)
    batches = list(koala.data.dataset(pattern, batch_size=4, training=False, size=8))
    assert [b[1].shape[0] for b in batches] == [4, 4, 2]  # last partial batch kept
    features, ab = batches[0]
    assert set(features) == {"L"}
    assert features["L"].shape == (4, 8, 8, 1) and ab.shape == (4, 8, 8, 2)
    assert features["L"].dtype == tf.float32 and ab.dtype == tf.float32
    lightness = features["L"].numpy()
    assert -1 <= lightness.min() < -0.9 and 0.0 < lightness.max() <= 1  # black .. bright red
    assert 0.3 < ab.numpy()[0, 0, -1, 0] < 1  # red: large positive a, scaled by 1/128


def test_training_flips_drops_remainder_and_shuffles(tmp_path):
    pattern = write_shards(tmp_path, count=2, per_shard=5)
    data = koala.data.dataset(pattern, batch_size=4, training=True, seed=1, size=8)
    assert data.element_spec[0]["L"].shape == (4, 8, 8, 1)  # static: drop_remainder
    left_dark = []
    for features, ab in data.take(8):  # endless: epoch after epoch
        lightness = features["L"].numpy()
        left_dark += list(lightness[:, 0, 0, 0] < lightness[:, 0, -1, 0])
        # L and ab are flipped together: where L is bright, a is red
        np.testing.assert_array_equal(lightness[..., 0] > 0, ab.numpy()[..., 0] > 0.3)
    assert len(left_dark) == 4 * 8 and 0 < sum(left_dark) < len(left_dark)


def test_embedding_feature(tmp_path):
    pattern = write_shards(tmp_path, count=1, per_shard=3, embedding_dim=6)
    features, _ = next(iter(koala.data.dataset(pattern, 3, training=False,
                                               with_embedding=True, size=8)))
    assert features["embedding"].shape == (3, 6)
    np.testing.assert_array_equal(features["embedding"].numpy()[:, 0], [0, 1, 2])


def example_ids(batches):
    """The examples of `batches` by identity: write_shards numbers each one in its embedding."""
    return [int(value) for features, _ in batches for value in features["embedding"].numpy()[:, 0]]


def test_input_context_shards_files_and_splits_the_batch(tmp_path):
    pattern = write_shards(tmp_path, count=4, per_shard=2, embedding_dim=1)  # examples 0..7
    read, trained = [], []
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2,
                                             input_pipeline_id=pipeline,
                                             num_replicas_in_sync=2)
        data = koala.data.dataset(pattern, batch_size=4, training=False, size=8,
                                  input_context=context, with_embedding=True)
        batches = list(data)
        assert all(ab.shape[0] <= 2 for _, ab in batches)  # per-replica batch: 4 / 2
        read.append(example_ids(batches))
        stream = koala.data.dataset(pattern, batch_size=4, training=True, seed=2, size=8,
                                    input_context=context, with_embedding=True)
        trained.append(example_ids(stream.take(3)))  # 6 examples: over one epoch of its 4
    # every example read exactly once, by one pipeline, in whole files (2 examples each)
    assert sorted(read[0] + read[1]) == list(range(8))
    for ids in read:
        files = {i // 2 for i in ids}
        assert len(files) == 2 and sorted(ids) == sorted(2 * f + k for f in files for k in (0, 1))
    # training: each pipeline streams its own files, the other's never
    assert [set(ids) for ids in trained] == [set(ids) for ids in read]


def test_reads_under_a_distribution_strategy(tmp_path):
    pattern = write_shards(tmp_path, count=2, per_shard=4)
    strategy = tf.distribute.get_strategy()
    data = strategy.distribute_datasets_from_function(
        lambda context: koala.data.dataset(pattern, 4, training=True, size=8,
                                           input_context=context))
    features, ab = next(iter(data))
    assert features["L"].shape == (4, 8, 8, 1) and ab.shape == (4, 8, 8, 2)


def test_size_is_read_from_the_manifest(tmp_path):
    pattern = write_shards(tmp_path, count=1, per_shard=2)
    (tmp_path / "manifest.json").write_text('{"settings": {"size": 8}}')
    data = koala.data.dataset(pattern, 2, training=False)
    assert data.element_spec[1].shape.as_list() == [None, 8, 8, 2]


def test_missing_files_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no records match .*none-"):
        koala.data.dataset(str(tmp_path / "none-*.tfrecord"), 2)


def test_fewer_files_than_pipelines_shards_by_example(tmp_path):
    pattern = write_shards(tmp_path, count=1, per_shard=6, embedding_dim=1)  # examples 0..5
    read, trained = [], []
    for pipeline in range(2):
        context = tf.distribute.InputContext(2, pipeline, 2)
        read.append(example_ids(koala.data.dataset(pattern, 4, training=False, size=8,
                                                   input_context=context, with_embedding=True)))
        stream = koala.data.dataset(pattern, 4, training=True, seed=2, size=8,
                                    input_context=context, with_embedding=True)
        trained.append(example_ids(stream.take(3)))  # 6 examples: two epochs of its 3
    # one file, two pipelines: every example read exactly once, half by each
    assert sorted(read[0] + read[1]) == list(range(6)) and len(read[0]) == len(read[1]) == 3
    assert [set(ids) for ids in trained] == [set(ids) for ids in read]  # training too


def test_a_stream_started_at_a_position_equals_the_tail_of_a_full_stream(tmp_path):
    # 15 examples numbered by their embedding: epochs of 15, batches of 4
    pattern = write_shards(tmp_path, count=3, per_shard=5, embedding_dim=1)

    def batches(start_example, count):
        data = koala.data.dataset(pattern, 4, training=True, seed=3, size=8, shuffle_buffer=4,
                                  with_embedding=True, start_example=start_example)
        return [(f["embedding"].numpy()[:, 0], f["L"].numpy()) for f, _ in data.take(count)]

    expected = batches(0, 12)  # 48 examples: 3.2 epochs
    order = np.concatenate([ids for ids, _ in expected])
    assert sorted(order[:15]) == list(range(15)) and list(order[:15]) != list(order[15:30])
    for start_batch in (2, 5, 9):
        for (ids, lightness), (want_ids, want_lightness) in zip(
                batches(4 * start_batch, 12 - start_batch), expected[start_batch:]):
            np.testing.assert_array_equal(ids, want_ids)
            np.testing.assert_array_equal(lightness, want_lightness)  # the same flips
