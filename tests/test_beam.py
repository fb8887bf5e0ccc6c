"""koala records --runner beam: the same bytes as the local writer, dead letters, the prior.

The equivalence test runs the DirectRunner in multi_processing mode with 2 workers (separate
SDK worker processes, as on a cluster) over the bad-input corpus of test_records.py plus
real photos, and compares every file of the output tree with the local writer's.
"""

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("apache_beam", reason="apache-beam is an extra: pip install 'koala[beam]'")

from conftest import shared_data_dir  # noqa: E402
# corpus is a fixture: importing it makes it this module's too
from test_records import colourful, corpus, read_all, tree_bytes  # noqa: E402,F401

from koala import color  # noqa: E402
from koala.data import beam_writer, sources, writer  # noqa: E402

REAL_PHOTOS = 6
SETTINGS = dict(size=48, shards=2, val_fraction=0.25, seed=3)
TWO_PROCESSES = "--direct_running_mode=multi_processing --direct_num_workers=2"
IN_PROCESS = "--direct_running_mode=in_memory"


@pytest.fixture(scope="module")
def mixed_folder(corpus, tmp_path_factory):
    """The bad-input corpus plus a few real photos (spread over the training folder)."""
    data = shared_data_dir()
    if data is None:
        pytest.skip("../shared/data is absent: the equivalence test needs real photos")
    folder = tmp_path_factory.mktemp("mixed")
    for path in corpus[0].iterdir():
        shutil.copy(path, folder / path.name)
    photos = sources.folder_source(data / "photos" / "train").paths
    for path in photos[::len(photos) // REAL_PHOTOS][:REAL_PHOTOS]:
        shutil.copy(path, folder / f"real_{path.name}")
    return folder


def settings_for(folder, **overrides):
    source = sources.folder_source(folder)
    return source, writer.Settings(source=source.description, **dict(SETTINGS, **overrides))


@pytest.fixture(scope="module")
def both_builds(mixed_folder, tmp_path_factory):
    local_out, beam_out = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("beam")
    source, settings = settings_for(mixed_folder)
    local = writer.build(source, local_out, settings, processes=2)
    source, settings = settings_for(mixed_folder)
    beam = beam_writer.build(source, beam_out, settings, TWO_PROCESSES)
    return local_out, local, beam_out, beam


def test_beam_output_is_byte_identical_to_the_local_writer(both_builds):
    local_out, local, beam_out, beam = both_builds
    assert beam == local
    local_tree, beam_tree = tree_bytes(local_out), tree_bytes(beam_out)
    assert sorted(beam_tree) == sorted(local_tree)  # no tasks file or temporary left over
    assert [name for name in local_tree if beam_tree[name] != local_tree[name]] == []


def test_beam_build_splits_lands_and_dead_letters_as_expected(corpus, both_builds):
    _, _, expected_skips, landed = corpus
    _, _, beam_out, manifest = both_builds
    assert {s["id"]: s["reason"] for s in manifest["skipped"]} == expected_skips
    examples = read_all(beam_out)
    assert landed <= set(examples)
    assert len([i for i in examples if i.startswith("real_")]) == REAL_PHOTOS
    counts = manifest["counts"]
    assert counts["train"]["shards"] == 2 and counts["val"]["shards"] == 1
    assert counts["train"]["examples"] + counts["val"]["examples"] == len(examples)
    assert counts["val"]["items"] == round((len(landed) + len(expected_skips) + REAL_PHOTOS)
                                           * SETTINGS["val_fraction"])
    assert np.array(manifest["prior"]["counts"]).sum() > 0


def test_rerun_keeps_complete_shards_and_refuses_other_settings(mixed_folder, both_builds):
    _, _, beam_out, manifest = both_builds
    before = tree_bytes(beam_out)
    source, settings = settings_for(mixed_folder)
    assert beam_writer.build(source, beam_out, settings, TWO_PROCESSES) == manifest
    assert tree_bytes(beam_out) == before
    source, settings = settings_for(mixed_folder, size=32)
    with pytest.raises(ValueError, match="other settings"):
        beam_writer.build(source, beam_out, settings, TWO_PROCESSES)
    assert tree_bytes(beam_out) == before


def test_tfds_source_gives_the_same_bytes_as_the_local_writer(tmp_path):
    """A prepared tfds data set (stored by tfds itself, offline): the workers read their
    index ranges through the pickled source."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    gray = np.full((30, 40, 3), 128, np.uint8)
    arrays = [colourful(30, 40, seed) for seed in range(7)] + [gray]
    data = tf.data.Dataset.from_generator(
        lambda: ({"image": a} for a in arrays),
        output_signature={"image": tf.TensorSpec((None, None, 3), tf.uint8)})
    tfds.dataset_builders.store_as_tfds_dataset(
        name="koala_beam_test", version="1.0.0", split_datasets={"train": data},
        features=tfds.features.FeaturesDict({"image": tfds.features.Image()}),
        data_dir=str(tmp_path / "tfds"))
    manifests = {}
    for name in ("local", "beam"):
        source = sources.open_source("tfds:koala_beam_test:train", str(tmp_path / "tfds"))
        settings = writer.Settings(source=source.description, size=24, shards=2,
                                   val_fraction=0.25)
        out = tmp_path / name
        manifests[name] = (writer.build(source, out, settings, processes=1) if name == "local"
                           else beam_writer.build(source, out, settings, IN_PROCESS))
    assert manifests["beam"] == manifests["local"]
    assert [s["reason"] for s in manifests["beam"]["skipped"]] == ["grayscale"]
    assert tree_bytes(tmp_path / "beam") == tree_bytes(tmp_path / "local")


def test_an_unexpected_error_goes_to_the_dead_letter_output(corpus, tmp_path):
    folder = corpus[0]
    settings = writer.Settings(source="corpus", size=16, resize="no-such-mode")
    task = {"shard": "train-00000-of-00001.tfrecord", "position": 7,
            "files": [["good0.jpg", str(folder / "good0.jpg")],
                      ["missing.jpg", str(folder / "missing.jpg")]]}
    encode = beam_writer.EncodeChunk(settings, str(tmp_path))
    encode.setup()
    *dead, chunk = list(encode.process(json.dumps(task)))
    assert [o.tag for o in dead] == [beam_writer.DEAD_LETTER] * 2
    (shard, (position, failed)), (_, (_, unreadable)) = [o.value for o in dead]
    assert (shard, position) == (task["shard"], 7)
    assert failed["id"] == "good0.jpg" and failed["reason"] == beam_writer.FAILED
    assert "no-such-mode" in failed["detail"]
    assert unreadable["id"] == "missing.jpg" and unreadable["reason"] == writer.UNREADABLE
    assert chunk[0] == task["shard"] and chunk[1][0] == 7 and chunk[1][2] == 0


def test_prior_combine_fn_equals_one_histogram_of_all_samples():
    rng = np.random.default_rng(0)
    samples = [rng.integers(-100, 100, (64, 2)).astype(np.int16) for _ in range(2500)]
    combine = beam_writer.PriorHistograms()
    halves = []
    for part in (samples[:1700], samples[1700:]):  # the first half flushes in bulk
        accumulator = combine.create_accumulator()
        for one in part:
            accumulator = combine.add_input(accumulator, one)
        halves.append(accumulator)
    counts, fine = combine.extract_output(combine.merge_accumulators(halves))
    everything = np.concatenate(samples)
    np.testing.assert_array_equal(counts, color.histogram_counts(everything))
    np.testing.assert_array_equal(fine, color.fine_histogram_counts(everything))
    assert counts.sum() == len(everything)


@pytest.mark.slow
def test_embedding_from_a_real_backbone_matches_the_local_writer(corpus, tmp_path):
    """efficientnet_lite0 (real ImageNet weights, offline), loaded in DoFn.setup, embeds the
    photo at embedding_size."""
    folder = corpus[0]
    results = {}
    for name, build in (("local", lambda s, st, out: writer.build(s, out, st, processes=1)),
                        ("beam", lambda s, st, out: beam_writer.build(
                            s, out, st, IN_PROCESS))):
        source = sources.folder_source(folder)
        settings = writer.Settings(source=source.description, size=64, val_fraction=0.0,
                                   embedding="efficientnet_lite0", embedding_size=96)
        build(source, settings, tmp_path / name)
        results[name] = read_all(tmp_path / name)
    assert set(results["beam"]) == set(results["local"]) and results["local"]
    for item_id, local in results["local"].items():
        beam = results["beam"][item_id]
        np.testing.assert_array_equal(beam["L"], local["L"])
        assert beam["embedding"].shape == local["embedding"].shape == (1280,)
        # batches differ (Beam's BatchElements): float16 of the same vector up to rounding
        np.testing.assert_allclose(beam["embedding"].astype(np.float32),
                                   local["embedding"].astype(np.float32), atol=2e-2, rtol=2e-2)
