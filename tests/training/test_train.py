"""The training loop: strategies agree, two workers train from `koala records` output,
SIGKILL resumes to the same weights, NaN stops, every experiment runs, user errors are lines.

Multi-process tests run `python` subprocesses (two MultiWorkerMirroredStrategy workers on
localhost ports, logical CPU devices that must be set before TF starts); the rest run in
this process on records written here with the schema (32 px, a handful of images).
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from koala import color
from koala.bundle import keras_bundle
from koala.inference import runtime
from koala.training import config as training_config, distribute, loop
from koala.training import records as training_records
from koala.data import schema

REPO = pathlib.Path(__file__).resolve().parents[2]
SIZE = 32

# Trains a 2-conv model 3 steps on fixed in-memory data, then writes its weights (.npz).
# The dataset_fn splits every global batch into per-replica slices the same way for any
# number of workers/replicas, so every strategy must end at the same weights.
STRATEGY_SCRIPT = textwrap.dedent("""
    import sys
    import keras, numpy as np, tensorflow as tf
    from koala.training import config as training_config, distribute, loop

    mode, workdir = sys.argv[1], sys.argv[2]
    modes = {"local": ["default", "mirrored:2"], "worker": ["multiworker"]}[mode]
    strategies = [distribute.select_strategy(name) for name in modes]  # logical CPUs first

    rng = np.random.default_rng(0)
    gray = rng.uniform(-1, 1, (64, 16, 16, 1)).astype(np.float32)
    target = np.tanh(np.concatenate([gray * 0.8, -gray * 0.5], -1) + 0.1).astype(np.float32)

    def dataset_fn(split, global_batch, context):
        data = tf.data.Dataset.from_tensor_slices(({"L": gray}, target))
        if split == "val":
            return data.batch(global_batch)
        per_replica = context.get_per_replica_batch_size(global_batch)
        return data.repeat().batch(per_replica, drop_remainder=True).shard(
            context.num_input_pipelines, context.input_pipeline_id)

    def model():
        inputs = {"L": keras.Input((None, None, 1), name="L")}
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inputs["L"])
        ab = keras.layers.Conv2D(2, 3, padding="same", activation="tanh", name="ab")(x)
        return keras.Model(inputs, ab)

    for name, strategy in zip(modes, strategies):
        config = training_config.load_config("cifar10_unet_regression:tiny")
        config.model.update(name="two_convs", output_kind="regression")
        config.data.update(size=16, color_space="lab")
        config.train.update(batch_size=8, steps=3)
        config.optimizer.learning_rate = 0.01
        out = f"{workdir}/{name.replace(':', '_')}"
        loop.train(config, out, model=model, dataset_fn=dataset_fn, strategy=strategy)
        own = distribute.worker_dir(out, strategy)  # each worker's own bundle
        done = keras.saving.load_model(f"{own}/bundle/model.keras")
        if strategy.cluster_resolver is not None:
            out += f"-task{strategy.cluster_resolver.task_id}"
        np.savez(out + ".npz", *[w.numpy() for w in done.weights])
""")


# `koala train ARGS` with its training input tapped: every batch of L that koala.data yields
# for training (the records pipeline under the loop's input, before any colour conversion)
# is saved in $KOALA_TAP.
TAPPED_TRAIN_SCRIPT = textwrap.dedent("""
    import itertools, os, sys
    import numpy as np
    import tensorflow as tf
    import koala.data
    from koala import cli

    dataset, batches = koala.data.dataset, itertools.count()

    def save(lightness):
        np.save(os.path.join(os.environ["KOALA_TAP"], f"{next(batches):05d}.npy"),
                lightness.numpy())
        return 0

    def tapped(pattern, batch_size, training=True, **kwargs):
        data = dataset(pattern, batch_size, training=training, **kwargs)
        if not training:
            return data

        def tap(features, target):
            with tf.control_dependencies([tf.py_function(save, [features["L"]], tf.int32)]):
                return dict(features, L=tf.identity(features["L"])), target

        return data.map(tap)

    koala.data.dataset = tapped
    sys.exit(cli.run(["koala", *sys.argv[1:]]))
""")


def _identify(images, records_dir, split):
    """The index in the `split` records of each image (an L as koala.data yields it, maybe
    mirrored by the training flips): the one example whose L it is."""
    files = sorted(str(path) for path in records_dir.glob(f"{split}-*.tfrecord"))
    truth = np.stack([schema.parse(serialized)["L"].numpy()
                      for serialized in tf.data.TFRecordDataset(files)])
    ids = []
    for image in images:
        distance = np.minimum(np.abs(truth - image).max(axis=(1, 2, 3)),
                              np.abs(truth[:, :, ::-1] - image).max(axis=(1, 2, 3)))
        ids.append(int(np.argmin(distance)))
        assert distance[ids[-1]] < 1e-6 < np.partition(distance, 1)[1], "not one example"
    return ids, len(truth)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO), **extra)
    env.pop("TF_CONFIG", None)
    return {**env, **extra}


def _weights(path):
    with np.load(path) as data:
        return [data[key] for key in sorted(data.files, key=lambda k: int(k.split("_")[1]))]


def test_default_mirrored_and_two_workers_reach_the_same_weights(tmp_path):
    script = tmp_path / "strategies.py"
    script.write_text(STRATEGY_SCRIPT)
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    processes = [subprocess.Popen([sys.executable, str(script), "local", str(tmp_path)],
                                  env=_env(), stderr=subprocess.PIPE, text=True)]
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen(
            [sys.executable, str(script), "worker", str(tmp_path / "mwms")],
            env=_env(TF_CONFIG=tf_config), stderr=subprocess.PIPE, text=True))
    for process in processes:
        _, err = process.communicate(timeout=240)
        assert process.returncode == 0, err[-3000:]

    reference = _weights(tmp_path / "default.npz")
    for other in ("mirrored_2.npz", "mwms/multiworker-task0.npz", "mwms/multiworker-task1.npz"):
        weights = _weights(tmp_path / other)
        assert len(weights) == len(reference) == 4
        for got, want in zip(weights, reference):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=other)
    worker0, worker1 = (_weights(tmp_path / f"mwms/multiworker-task{i}.npz") for i in (0, 1))
    for first, second in zip(worker0, worker1):
        np.testing.assert_array_equal(first, second)  # all-reduce: bitwise-identical replicas
    run = tmp_path / "mwms" / "multiworker"
    assert (run / "bundle").is_dir() and (run / "checkpoints").is_dir()  # the chief's
    assert not (run / "worker-1" / "checkpoints").exists()  # worker 1's scratch copy: removed


def _write_records(directory, n_train=16, n_val=8, seed=0):
    """Tiny smooth colour images as records, with the ab histogram zhang_eccv16 needs."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    counts = np.zeros(len(color.ab_bins()), np.int64)
    for split, count in (("train", n_train), ("val", n_val)):
        with tf.io.TFRecordWriter(str(directory / f"{split}-00000-of-00001.tfrecord")) as out:
            for index in range(count):
                rgb = tf.image.resize(rng.uniform(0, 1, (1, 4, 4, 3)), (SIZE, SIZE))[0]
                lab = color.rgb_to_lab(rgb).numpy()
                lightness, ab = schema.quantize_lab(lab)
                out.write(schema.encode(f"{split}/{index}", lightness, ab))
                if split == "train":
                    counts += color.histogram_counts(lab[..., 1:])
    manifest = {"settings": {"size": SIZE}, "prior": {"counts": counts.tolist()}}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return _write_records(tmp_path_factory.mktemp("records"))


def _cli(workdir, records_dir, *overrides):
    return [sys.executable, "-m", "koala.cli", "train",
            "--experiment", "cifar10_unet_regression:tiny", "--workdir", str(workdir),
            f"--config.data.records={records_dir}", "--config.data.source=", *overrides]


def _history(workdir, split="train"):
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == split]


def _bundle_weights(workdir):
    return keras_bundle.load(workdir).model.get_weights()


def test_sigkill_then_rerun_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, records):
    """Same seed, CPU: killed after a checkpoint and started again, the run reads the same
    batches (the data order is a function of the step) and ends at the same weights."""
    steps = 60  # 16 train examples, batch 4: 15 epochs, so resuming crosses epochs
    args = ["--config.train.steps=60", "--config.checkpoint.every_steps=10",
            "--config.eval.every_steps=1000"]
    straight = subprocess.run(_cli(tmp_path / "straight", records, *args), env=_env(),
                              capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr[-3000:]

    workdir = tmp_path / "killed"
    command = _cli(workdir, records, *args)
    process = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and not tf.train.latest_checkpoint(str(workdir / "checkpoints")):
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    rerun = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    resumed_at = int(rerun.stderr.split("resumed from")[1].split("at step")[1].split()[0])
    assert 10 <= resumed_at < steps

    for got, want in zip(_bundle_weights(workdir), _bundle_weights(tmp_path / "straight")):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    train_steps = [r["step"] for r in _history(workdir)]
    assert train_steps == list(range(1, steps + 1))  # each step once: no replayed batches
    losses = {r["step"]: r["loss"] for r in _history(workdir)}
    for record in _history(tmp_path / "straight"):
        assert losses[record["step"]] == pytest.approx(record["loss"], rel=1e-5)


def test_two_workers_train_from_koala_records_with_one_val_shard(tmp_path, shared_data):
    """`koala records` writes 1 train and 1 val shard; two localhost workers (TF_CONFIG)
    split them by example (FILE sharding would refuse fewer files than workers)."""
    records = tmp_path / "records"
    built = subprocess.run(
        [sys.executable, "-m", "koala.cli", "records", "--input",
         str(shared_data / "photos" / "val"), "--output", str(records), "--size", "32",
         "--limit", "40", "--shards", "1", "--processes", "1"],
        env=_env(), capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    manifest = json.loads((records / "manifest.json").read_text())
    assert manifest["counts"]["val"]["shards"] == 1 == manifest["counts"]["train"]["shards"]

    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    workdir = tmp_path / "run"
    script = tmp_path / "tapped_train.py"
    script.write_text(TAPPED_TRAIN_SCRIPT)
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        # global batch 12: 6 examples a step per worker, so 4 steps cover a worker's share
        command = _cli(workdir, records, "--strategy=multiworker", "--config.train.steps=4",
                       "--config.train.batch_size=12")
        (tmp_path / f"tap-{index}").mkdir()
        processes.append(subprocess.Popen(
            [sys.executable, str(script), *command[3:]],
            env=_env(TF_CONFIG=tf_config, KOALA_TAP=str(tmp_path / f"tap-{index}")),
            stderr=subprocess.PIPE, text=True))
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
    # which examples each worker read, by content: disjoint halves that together are the
    # train split, every example read by exactly one worker
    read = []
    for index in range(2):
        images = np.concatenate([np.load(path) for path in
                                 sorted((tmp_path / f"tap-{index}").glob("*.npy"))])
        ids, examples = _identify(images, records, "train")
        read.append(ids)
    assert examples == manifest["counts"]["train"]["examples"]
    assert all(len(ids) >= 4 * 6 for ids in read), [len(ids) for ids in read]
    assert not set(read[0]) & set(read[1])
    assert set(read[0]) | set(read[1]) == set(range(examples))
    assert sorted(len(set(ids)) for ids in read) == [examples // 2, (examples + 1) // 2]
    chief, other = (keras_bundle.load(path).model for path in (workdir, workdir / "worker-1"))
    assert len(chief.trainable_weights) > 10
    for first, second in zip(chief.trainable_weights, other.trainable_weights):
        # all-reduced gradients: identical weights (BatchNorm's moving statistics are each
        # replica's own, as without SyncBatchNorm)
        np.testing.assert_array_equal(first.numpy(), second.numpy())
    val = _history(workdir, "val")
    assert [r["step"] for r in val] == [2, 4] and all(np.isfinite(r["loss"]) for r in val)
    assert not (workdir / "worker-1" / "checkpoints").exists()


def test_a_nan_loss_stops_with_a_message_and_keeps_the_last_checkpoint(tmp_path, records):
    config = training_config.load_config("cifar10_unet_regression:tiny")
    config.data.update(records=str(records), source="", color_space="lab")
    config.train.steps = 10
    config.checkpoint.every_steps = 2

    def dataset_fn(split, global_batch, context=None):
        good = training_records.make_dataset(config, split, global_batch, context)
        if split == "val":
            return good
        poisoned = good.map(lambda features, ab: (features, ab * float("nan")))
        return good.take(5).concatenate(poisoned)

    with pytest.raises(loop.NonFiniteLoss, match=r"became nan between steps 5 and 6.*ckpt-4"):
        loop.train(config, tmp_path, dataset_fn=dataset_fn)
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-4")
    reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints" / "ckpt-4"))
    saved = [reader.get_tensor(name) for name, _ in tf.train.list_variables(
        str(tmp_path / "checkpoints" / "ckpt-4")) if "model" in name and "VARIABLE" in name]
    assert saved and all(np.isfinite(value).all() for value in saved)
    assert not (tmp_path / "bundle").exists()


# koalarization reads an embedding these records lack: tests/test_pipelines.py runs it on
# records it builds, with the backbone carried into the bundle.
FAST_EXPERIMENTS = ["koalarization_lite", "effnet_head_lite", "zhang_eccv16",
                    "iizuka", "cifar10_unet_regression", "cifar10_unet_classification"]


@pytest.mark.parametrize("name", FAST_EXPERIMENTS + [
    pytest.param("effnet_head", marks=pytest.mark.slow)])
def test_each_experiment_builds_and_trains_two_steps(tmp_path, records, name):
    config = training_config.load_config(f"{name}:tiny")
    config.data.update(records=str(records), source="")
    config.train.steps = 2
    summary = loop.train(config, tmp_path, strategy=tf.distribute.get_strategy())
    assert summary["step"] == 2 and np.isfinite(summary["train_loss"])
    assert np.isfinite(summary["val"]["loss"]) and "psnr" in summary["val"]
    meta = json.loads((tmp_path / "bundle" / "koala.json").read_text())
    assert meta["model"] == config.model.name and meta["size"] == SIZE
    loaded = keras_bundle.load(tmp_path)
    ab = runtime.KerasRuntime(loaded).ab(np.full((1, SIZE, SIZE, 1), 50.0, np.float32))
    assert ab.shape == (1, SIZE, SIZE, 2) and np.isfinite(ab).all()


def test_every_shipped_experiment_has_the_sections_and_scale_variants():
    sections = {"data", "model", "loss", "optimizer", "schedule", "train", "eval",
                "checkpoint", "precision"}
    assert set(FAST_EXPERIMENTS + ["effnet_head", "koalarization", "default"]) == \
        set(training_config.experiment_names())
    for name in training_config.experiment_names():
        for variant in ("", ":tpu", ":gpu", ":cpu", ":tiny"):
            config = training_config.load_config(name + variant)
            assert sections <= set(config.keys()), name
    paper = training_config.load_config("koalarization")
    assert (paper.optimizer.name, paper.optimizer.learning_rate, paper.train.batch_size) == \
        ("adam", 1e-3, 100)
    assert training_config.load_config("koalarization:tpu").precision == "mixed_bfloat16"
    assert training_config.load_config("koalarization:gpu").precision == "mixed_float16"


def _print_config(*args):
    return subprocess.run([sys.executable, "-m", "koala.cli", "train", *args, "--print_config"],
                          env=_env(), capture_output=True, text=True, timeout=120)


def test_overrides_parse_as_the_fields_type_and_reject_unknown_fields():
    """`--config.<path>` flags (ml_collections config_flags) take the field's type; a typo,
    a wrong type or an unknown experiment/variant is one line and exit 1."""
    shown = _print_config("--experiment", "koalarization", "--config.train.batch_size=64",
                          "--config.optimizer.learning_rate=3e-4",
                          "--config.train.jit_compile=true", "--config.precision=mixed_bfloat16",
                          "--config.model.kwargs.weights=/tmp/irv2.h5")
    assert shown.returncode == 0, shown.stderr
    printed = shown.stdout
    for line in ("batch_size: 64", "learning_rate: 0.0003", "jit_compile: true",
                 "precision: mixed_bfloat16", "weights: /tmp/irv2.h5"):
        assert line in printed, printed
    for args, expected in [
            (["--experiment", "koalarization", "--config.train.batchsize=1"], "batchsize"),
            (["--experiment", "koalarization", "--config.trian.steps=1"], "trian"),
            (["--experiment", "koalarization", "--config.train.jit_compile=maybe"], "maybe"),
            (["--experiment", "koalarization", "--config.train.steps=many"], "many"),
            (["--experiment", "no_such_experiment"], "unknown experiment"),
            (["--experiment", "koalarization:huge"], "unknown variant")]:
        result = _print_config(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, (args, result.stderr)
        assert lines[0].startswith("koala train: ") and expected in lines[0], (args, lines)
    config = training_config.override(training_config.load_config("koalarization"),
                                      {"train.steps": 7, "optimizer.learning_rate": 3e-4})
    assert (config.train.steps, config.optimizer.learning_rate) == (7, 3e-4)
    with pytest.raises(training_config.ConfigError, match="trian"):
        training_config.override(config, {"trian.steps": 1})
    with pytest.raises(training_config.ConfigError):
        training_config.override(config, {"train.steps": "many"})


def test_precision_follows_the_hardware_unless_overridden():
    default = tf.distribute.get_strategy()
    assert distribute.precision_policy("auto", default) == "float32"  # this CPU-only machine
    assert distribute.precision_policy("mixed_bfloat16", default) == "mixed_bfloat16"
    with pytest.raises(ValueError):
        distribute.precision_policy("float8", default)
    with pytest.raises(ValueError, match="unknown strategy"):
        distribute.select_strategy("horovod")


def _scalars(logdir, tag):
    """{step: value} of a scalar summary in a TensorBoard log directory."""
    from tensorboard.backend.event_processing import event_accumulator  # noqa: PLC0415

    events = event_accumulator.EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    events.Reload()
    return {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)}


def test_tensorboard_logs_and_a_resumed_run_stretches_the_cosine_schedule(tmp_path, records):
    """The TensorBoard logs hold what the run did (loss as metrics.jsonl, the learning rate
    of the cosine schedule, val PSNR and the image grid); rerun with more train.steps, the
    same workdir resumes and its rate follows the cosine over the new length."""
    from tensorboard.backend.event_processing import event_accumulator  # noqa: PLC0415

    workdir = tmp_path / "run"
    schedule = ["--config.schedule.name=cosine", "--config.schedule.warmup_steps=0",
                "--config.optimizer.learning_rate=0.01", "--config.eval.every_steps=4",
                "--config.checkpoint.every_steps=4"]
    for steps in (4, 12):
        done = subprocess.run(_cli(workdir, records, f"--config.train.steps={steps}", *schedule),
                              env=_env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed from" in done.stderr
    losses = _scalars(workdir / "train", "loss")
    assert sorted(losses) == list(range(1, 13))
    for record in _history(workdir):
        assert losses[record["step"]] == pytest.approx(record["loss"], rel=1e-5)
    rates = _scalars(workdir / "train", "learning_rate")

    def cosine(step, total):  # Keras CosineDecay from 0.01 over `total` steps, alpha 0
        return 0.01 * 0.5 * (1 + np.cos(np.pi * min(step, total) / total))

    for step in range(1, 5):  # the rate is logged after the step's update: at `step`
        assert rates[step] == pytest.approx(cosine(step, 4), abs=1e-6)
    for step in range(5, 13):
        assert rates[step] == pytest.approx(cosine(step, 12), abs=1e-6)
    psnr = _scalars(workdir / "val", "psnr")
    assert sorted(psnr) == [4, 8, 12] and all(10 < value < 60 for value in psnr.values())
    images = event_accumulator.EventAccumulator(str(workdir / "val"),
                                                size_guidance={"tensors": 0})
    images.Reload()
    (grid_tag,) = [t for t in images.Tags()["tensors"] if "prediction" in t]
    grid = images.Tensors(grid_tag)[-1].tensor_proto
    width, height = (int(v) for v in tf.make_ndarray(grid)[:2])
    assert width > 0 and height > 0 and len(tf.make_ndarray(grid)) == 2 + 2  # 2 images
