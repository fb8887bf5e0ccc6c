"""The training loop of every Koala experiment, on one CPU or a TPU pod alike.

Why a custom loop and not `model.fit()`: Keras 3 `fit()` fails under
MultiWorkerMirroredStrategy (keras-team/keras#20585). Here each replica computes its loss
summed over its examples and divided by the *global* batch, the optimizer all-reduces
(sums) the gradients, so every strategy takes the same step as one device on the whole
batch (tests/test_train.py checks default == Mirrored == two MWMS workers).

Fault tolerance: tf.train.CheckpointManager saves (step, model, optimizer) every
`checkpoint.every_steps` and at the end; the same command after a crash (even SIGKILL)
resumes from the newest checkpoint and stops at `train.steps`. A NaN/inf loss stops the
run with NonFiniteLoss before anything else is saved, so the last good checkpoint survives.

Hooks for code that trains its own model: `train(config, workdir, model=..., loss_fn=...,
dataset_fn=...)`; `model` may be a function returning a keras.Model (built in the
strategy's scope) whose outputs may be a dict; `loss_fn(ab_true, outputs)` returns a
scalar, per-example or per-pixel loss.
"""

import json
import os
import pathlib
import shutil
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from koala import bundle, color

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multiworker", "tpu")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
# Seed 004 scales U and V to [-1, 1] by their BT.601 ranges, as ab is scaled by 128.
UV_RANGE = color.UV_SCALE


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or inf: training stopped, the last good checkpoint is kept."""


# --------------------------------------------------------------------------- experiments

EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parents[1] / "experiments"


def experiment_names():
    """Experiments shipped in experiments/ (each a module with get_config)."""
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.py")
                  if not p.stem.startswith("_") and p.stem != "common")


def load_config(spec):
    """"NAME[:ARG]" or "path/to/file.py[:ARG]" -> the experiment's ConfigDict.

    ARG is the scale variant (tpu, gpu, cpu, tiny), as big_vision's `config.py:runlocal`.
    """
    import importlib.util
    import sys

    target, _, arg = spec.partition(":")
    path = pathlib.Path(target)
    if path.suffix != ".py":
        path = EXPERIMENTS_DIR / f"{target}.py"
    if not path.is_file():
        raise ValueError(f"unknown experiment {target!r}; known: {', '.join(experiment_names())}")
    root = str(path.resolve().parents[1])  # experiments import each other as `experiments.x`
    if root not in sys.path:
        sys.path.insert(0, root)
    module_spec = importlib.util.spec_from_file_location(f"experiments.{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)


def apply_overrides(config, overrides):
    """{"train.batch_size": "64", ...} -> config with each value parsed to the field's type."""
    for dotted, text in overrides.items():
        *parents, leaf = dotted.split(".")
        node = config
        for key in parents:
            node = node[key]
        if leaf not in node:
            raise KeyError(f"--config.{dotted}: the experiment has no field {dotted!r}")
        node[leaf] = _parse_like(node[leaf], text)
    return config


def _parse_like(current, text):
    """Parses the command-line `text` as the type of the field's `current` value."""
    if isinstance(current, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"expected a boolean, got {text!r}")
        return text.lower() in ("true", "1")
    if isinstance(current, (int, float)):
        return type(current)(float(text)) if isinstance(current, int) and "e" in text.lower() \
            else type(current)(text)
    if current is None:
        import ast

        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
    return text


# --------------------------------------------------------------------------- strategy

def select_strategy(name="auto"):
    """A tf.distribute strategy by name; "auto" picks TPU > multi-worker > multi-GPU > default.

    Names: auto, default, one_device, mirrored, mirrored:N (N logical CPU devices when no GPU
    is present: lets a CPU test MirroredStrategy; must run before TF touches a device),
    multiworker (TF_CONFIG), tpu or tpu:NAME (Colab, a TPU VM or a named Cloud TPU).
    """
    kind, _, arg = name.partition(":")
    if kind not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {STRATEGIES}")
    if kind == "auto":
        kind = _detect_strategy()
        logging.info("strategy auto -> %s", kind)
    if kind == "tpu":
        return _tpu_strategy(arg)
    if kind == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored":
        devices = None
        if not tf.config.list_physical_devices("GPU"):
            devices = [d.name for d in _logical_cpus(int(arg or 2))]
        return tf.distribute.MirroredStrategy(devices)
    if kind == "one_device":
        return tf.distribute.OneDeviceStrategy(arg or "/cpu:0")
    return tf.distribute.get_strategy()


def _detect_strategy():
    """What the hardware asks for, without probing the network (no metadata server here)."""
    if any(os.environ.get(k) for k in ("TPU_NAME", "COLAB_TPU_ADDR", "TPU_ACCELERATOR_TYPE")) \
            or pathlib.Path("/dev/accel0").exists():
        return "tpu"
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    if sum(len(cluster.get(k, [])) for k in ("chief", "worker")) > 1:
        return "multiworker"
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return "mirrored"
    return "default"


def _tpu_strategy(tpu=""):
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _logical_cpus(count):
    """Splits the first CPU into `count` logical devices (once, before TF initialises)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    if len(tf.config.get_logical_device_configuration(cpu) or []) != count:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * count)
        except RuntimeError as error:
            raise RuntimeError(
                f"mirrored:{count} on CPU must be chosen before TensorFlow runs any op "
                f"({error})") from None
    return tf.config.list_logical_devices("CPU")[:count]


def is_chief(strategy):
    """True on the one process that writes summaries, the final checkpoint and the bundle."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type or isinstance(strategy, tf.distribute.TPUStrategy):
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (
        not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)


def _worker_dir(workdir, strategy):
    """The chief writes into workdir; other workers into workdir/worker-N (same collectives)."""
    if is_chief(strategy):
        return workdir
    return workdir / f"worker-{strategy.cluster_resolver.task_id}"


# --------------------------------------------------------------------------- precision

def precision_policy(name, strategy):
    """"auto" -> bfloat16 on TPU, float16 (+ loss scaling) on GPU, float32 on CPU."""
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; choose one of {PRECISIONS}")
    if name != "auto":
        return name
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "mixed_bfloat16"
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"


# --------------------------------------------------------------------------- data

def ensure_records(data_config):
    """Builds the records from `data.source` on first use; returns the records directory."""
    records = str(data_config.records)
    if tf.io.gfile.exists(f"{records}/manifest.json") or not data_config.source:
        return records
    from koala.data import sources, writer  # imported late: only a first run builds records

    logging.info("building records %s from %s", records, data_config.source)
    settings = writer.Settings(source=str(data_config.source), size=int(data_config.size),
                               val_fraction=float(data_config.val_fraction),
                               limit=int(data_config.limit),
                               embedding=str(data_config.embedding_backbone))
    writer.build(sources.open_source(settings.source), records, settings)
    return records


def records_pattern(records, split):
    return f"{records}/{split}-*.tfrecord"


def make_dataset(config, split, batch_size, input_context=None):
    """(features, target) batches of `split` at data.size in data.color_space; train repeats.

    `batch_size` is global; with an input_context koala.data shards the files and divides it.
    """
    import koala.data

    training = split == "train"
    dataset = koala.data.dataset(
        records_pattern(config.data.records, split), batch_size, training=training,
        with_embedding=bool(config.data.with_embedding), seed=int(config.train.seed),
        input_context=input_context)
    size = int(config.data.size)
    convert = {"lab": lambda f, t: (f, t), "yuv": lab_to_yuv}[config.data.color_space]

    def prepare(features, target):
        features = dict(features, L=tf.image.resize(features["L"], (size, size)))
        return convert(features, tf.image.resize(target, (size, size)))

    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.repeat() if training else dataset


def lab_to_yuv(features, ab):
    """Model-scaled Lab batch -> ({"L": Y in [-1, 1]}, UV in [-1, 1]) for seed 004."""
    lab = tf.concat([color.unscale_l(features["L"]), color.unscale_ab(ab)], axis=-1)
    yuv = color.rgb_to_yuv(tf.clip_by_value(color.lab_to_rgb(lab), 0.0, 1.0))
    return {**features, "L": yuv[..., :1] * 2.0 - 1.0}, yuv[..., 1:] / UV_RANGE


def to_rgb(gray, target, color_space):
    """Model-scaled gray [B,H,W,1] + target [B,H,W,2] -> RGB in [0, 1] (for images, PSNR)."""
    if color_space == "yuv":
        rgb = color.yuv_to_rgb(tf.concat([(gray + 1.0) / 2.0, target * UV_RANGE], axis=-1))
    else:
        rgb = color.lab_to_rgb(tf.concat([color.unscale_l(gray), color.unscale_ab(target)], -1))
    return tf.clip_by_value(rgb, 0.0, 1.0)


# --------------------------------------------------------------------------- model, loss, optimizer

def output_kind(config):
    """"regression", "classification" or "binned", as the registry reports the model."""
    if config.model.get("output_kind"):
        return config.model.output_kind
    import koala.models

    return koala.models.describe(config.model.name, **config.model.kwargs.to_dict())["output"]


def build_model(config):
    import koala.models

    return koala.models.build(config.model.name, input_size=int(config.data.size),
                              **config.model.kwargs.to_dict())


def manifest(records):
    """The records' manifest.json as a dict ({} when absent)."""
    path = f"{records}/manifest.json"
    return json.loads(tf.io.gfile.GFile(path).read()) if tf.io.gfile.exists(path) else {}


def build_loss(config):
    """The loss named by config.loss, with the ab prior of the records when it needs one."""
    from koala import losses

    name, lam = config.loss.name, float(config.loss.lam)
    if name in ("rarity_weighted_mse", "rebalanced_cross_entropy"):
        prior = ab_prior(config.data.records)
        return getattr(losses, name)(prior, lam)
    return getattr(losses, name)


def ab_prior(records):
    """Smoothed p(ab bin) of the training records (Zhang's prior), from the manifest."""
    counts = manifest(records).get("prior", {}).get("counts")
    if counts is None:
        raise ValueError(f"{records}/manifest.json has no ab histogram: rebuild the records "
                         f"with `koala records` to use a prior-weighted loss")
    return color.smoothed_prior(np.asarray(counts, np.float64))


def build_optimizer(config, policy):
    """Adam/AdamW/SGD/Adadelta with the configured schedule; loss scaling for float16."""
    opt, sched = config.optimizer, config.schedule
    learning_rate = float(opt.learning_rate)
    if sched.name == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            0.0 if sched.warmup_steps else learning_rate, int(config.train.steps),
            warmup_target=learning_rate if sched.warmup_steps else None,
            warmup_steps=int(sched.warmup_steps))
    elif sched.name != "constant":
        raise ValueError(f"unknown schedule {sched.name!r} (constant or cosine)")
    common = dict(learning_rate=learning_rate, clipnorm=float(opt.clipnorm) or None)
    if opt.name == "adam":
        optimizer = keras.optimizers.Adam(beta_1=opt.beta_1, beta_2=opt.beta_2,
                                          weight_decay=float(opt.weight_decay) or None, **common)
    elif opt.name == "adamw":
        optimizer = keras.optimizers.AdamW(beta_1=opt.beta_1, beta_2=opt.beta_2,
                                           weight_decay=float(opt.weight_decay), **common)
    elif opt.name == "sgd":
        optimizer = keras.optimizers.SGD(momentum=0.9, **common)
    elif opt.name == "adadelta":
        optimizer = keras.optimizers.Adadelta(**common)
    else:
        raise ValueError(f"unknown optimizer {opt.name!r}")
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def per_example(loss, batch):
    """A scalar (mean), per-example or per-pixel loss -> per-example float32 [batch]."""
    loss = tf.cast(loss, tf.float32)
    if loss.shape.rank == 0:
        return tf.fill([batch], loss)
    if loss.shape.rank > 1:
        loss = tf.reduce_mean(loss, axis=list(range(1, loss.shape.rank)))
    return loss


def _float32(outputs):
    return tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), outputs)


def _primary(outputs):
    """The colour output of a model whose outputs may be a dict."""
    if isinstance(outputs, dict):
        return outputs["ab"] if "ab" in outputs else next(iter(outputs.values()))
    return outputs


def predicted_target(outputs, kind, size):
    """Model outputs -> predicted target in model units [B, size, size, 2] (as ab_true)."""
    output = _primary(outputs)
    if kind == "classification":
        output = color.scale_ab(color.annealed_mean(output))
    elif kind == "binned":
        from koala.models import unet

        output = unet.from_bins(output)
    return tf.image.resize(output, (size, size)) if output.shape[1] != size else output


# --------------------------------------------------------------------------- evaluation

def quality_metrics(gray, truth, prediction, color_space):
    """Mean PSNR (dB, RGB) per image, and Zhang's AuC of the ab error (Lab experiments)."""
    from koala import metrics

    true_rgb = to_rgb(gray, truth, color_space).numpy()
    pred_rgb = to_rgb(gray, prediction, color_space).numpy()
    result = {"psnr": float(np.mean([metrics.psnr(p, t) for p, t in zip(pred_rgb, true_rgb)]))}
    if color_space == "lab":
        result["auc"] = metrics.auc(color.unscale_ab(prediction), color.unscale_ab(truth))
    return result


def image_grid(gray, truth, prediction, color_space):
    """[N, H, 3W, 3] rows of gray | prediction | truth, as TensorBoard shows them."""
    gray = tf.convert_to_tensor(gray, tf.float32)
    gray_rgb = tf.image.grayscale_to_rgb((gray + 1.0) / 2.0)
    return tf.concat([gray_rgb, to_rgb(gray, prediction, color_space),
                      to_rgb(gray, truth, color_space)], axis=2)


# --------------------------------------------------------------------------- the loop

def train(config, workdir, model=None, loss_fn=None, dataset_fn=None, strategy=None):
    """Trains `config` in `workdir` (resuming if it holds checkpoints); returns a summary dict.

    Args:
      config: an experiment ConfigDict (experiments/common.py).
      workdir: checkpoints/, train/ and val/ (TensorBoard), metrics.jsonl, bundle/.
      model: None (the registry model of config.model), a keras.Model, or a function
        returning one (preferred under a strategy: it is called inside its scope).
      loss_fn: None (config.loss) or (ab_true, outputs) -> loss.
      dataset_fn: None (the records) or (split, global_batch, input_context) -> tf.data of
        (features, target) batches (per-replica batches when input_context is given;
        "train" must repeat).
      strategy: a tf.distribute strategy; default: select_strategy("auto").
    """
    workdir = pathlib.Path(workdir)
    strategy = strategy or select_strategy("auto")
    policy = precision_policy(config.precision, strategy)
    keras.mixed_precision.set_dtype_policy(policy)
    keras.utils.set_random_seed(int(config.train.seed))
    if dataset_fn is None:
        config.data.records = ensure_records(config.data)
        dataset_fn = lambda split, batch, context=None: make_dataset(config, split, batch, context)  # noqa: E731
    chief = is_chief(strategy)
    own_dir = _worker_dir(workdir, strategy)
    global_batch = int(config.train.batch_size)
    kind = output_kind(config)
    logging.info("%s: %d replica(s), %s, global batch %d, %s output", type(strategy).__name__,
                 strategy.num_replicas_in_sync, policy, global_batch, kind)

    with strategy.scope():
        if model is None:
            model = build_model(config)
        elif not isinstance(model, keras.Model):
            model = model()
        optimizer = build_optimizer(config, policy)
        optimizer.build(model.trainable_variables)
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    loss_fn = loss_fn or build_loss(config)
    checkpoint = tf.train.Checkpoint(step=step_var, model=model, optimizer=optimizer)
    manager = tf.train.CheckpointManager(checkpoint, str(own_dir / "checkpoints"),
                                         max_to_keep=int(config.checkpoint.keep))
    latest = tf.train.latest_checkpoint(str(workdir / "checkpoints"))  # the chief's, for all
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        logging.info("resumed from %s at step %d", latest, int(step_var))
    step, total = int(step_var.numpy()), int(config.train.steps)

    def step_fn(features, target):
        with tf.GradientTape() as tape:
            outputs = _float32(model(features, training=True))
            per_replica = per_example(loss_fn(target, outputs), tf.shape(target)[0])
            loss = tf.nn.compute_average_loss(per_replica, global_batch_size=global_batch)
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    if config.train.jit_compile:
        step_fn = tf.function(step_fn, jit_compile=True)

    @tf.function
    def train_steps(iterator, count):
        total_loss = tf.constant(0.0)
        for _ in tf.range(count):
            features, target = next(iterator)
            loss = strategy.reduce("SUM", strategy.run(step_fn, args=(features, target)), None)
            total_loss += loss
        return total_loss / tf.cast(count, tf.float32)

    def eval_fn(features, target):
        outputs = _float32(model(features, training=False))
        losses = per_example(loss_fn(target, outputs), tf.shape(target)[0])
        return (tf.reduce_sum(losses), tf.cast(tf.size(losses), tf.float32),
                features["L"], target, predicted_target(outputs, kind, int(config.data.size)))

    @tf.function
    def eval_step(features, target):
        loss_sum, count, *images = strategy.run(eval_fn, args=(features, target))
        reduce = lambda t: strategy.reduce("SUM", t, None)  # noqa: E731
        return reduce(loss_sum), reduce(count), [strategy.gather(t, axis=0) for t in images]

    def evaluate():
        dataset = dataset_fn("val", global_batch, None).take(int(config.eval.max_batches))
        loss_sum = count = 0.0
        kept = []
        for features, target in strategy.experimental_distribute_dataset(dataset):
            batch_loss, batch_count, images = eval_step(features, target)
            loss_sum, count = loss_sum + float(batch_loss), count + float(batch_count)
            kept.append([t.numpy() for t in images])
        if not kept:
            raise ValueError("the val split is empty: records need val-*.tfrecord shards")
        gray, truth, prediction = (np.concatenate(parts) for parts in zip(*kept))
        result = {"loss": loss_sum / count}
        result.update(quality_metrics(gray, truth, prediction, config.data.color_space))
        shown = int(config.eval.images)
        grid = image_grid(gray[:shown], truth[:shown], prediction[:shown],
                          config.data.color_space)
        return result, grid

    train_input = strategy.distribute_datasets_from_function(
        lambda context: dataset_fn("train", global_batch, context))
    iterator = iter(train_input)
    writers = _summary_writers(workdir, chief)
    history = _History(workdir / "metrics.jsonl" if chief else None)
    progress = _progress(step, total, chief)
    loss = float("nan")
    while step < total:
        count = _steps_until_event(step, total, config)
        started = time.perf_counter()
        loss = float(train_steps(iterator, tf.constant(count)))
        if not np.isfinite(loss):
            progress.close()
            raise NonFiniteLoss(
                f"the training loss became {loss} between steps {step} and {step + count}; "
                f"stopped without saving. Last good checkpoint: "
                f"{tf.train.latest_checkpoint(str(workdir / 'checkpoints'))} "
                f"(rerunning resumes there; lower optimizer.learning_rate or check the data)")
        step += count
        images_per_s = global_batch * count / (time.perf_counter() - started)
        progress.update(count)
        progress.set_postfix(loss=f"{loss:.4f}", img_s=f"{images_per_s:.1f}")
        with writers["train"].as_default(step=step):
            tf.summary.scalar("loss", loss)
            tf.summary.scalar("learning_rate", float(tf.convert_to_tensor(optimizer.learning_rate)))
            tf.summary.scalar("images_per_second", images_per_s)
        history.add({"step": step, "split": "train", "loss": loss, "img_s": images_per_s})
        if step % int(config.checkpoint.every_steps) == 0 or step == total:
            step_var.assign(step)
            manager.save(checkpoint_number=step)
        if step % int(config.eval.every_steps) == 0 or step == total:
            result, grid = evaluate()
            logging.info("step %d val %s", step, result)
            history.add({"step": step, "split": "val", **result})
            with writers["val"].as_default(step=step):
                for name, value in result.items():
                    tf.summary.scalar(name, value)
                tf.summary.image("gray|prediction|truth", grid, max_outputs=grid.shape[0])
    progress.close()
    for writer in writers.values():
        writer.flush()
    meta = {"model": config.model.name, "config": config.model.kwargs.to_dict(),
            "size": int(config.data.size), "output": kind, "name": config.experiment,
            "color_space": config.data.color_space}
    bundle.save(own_dir / "bundle", model, meta)
    if not chief:  # its checkpoints only mirrored the chief's collectives
        shutil.rmtree(own_dir / "checkpoints", ignore_errors=True)
    return {"step": step, "train_loss": loss, "val": history.last("val"),
            "workdir": str(workdir)}


def _steps_until_event(step, total, config):
    """Steps to run in one tf.function call: up to steps_per_loop, stopping at events."""
    every = [int(config.checkpoint.every_steps), int(config.eval.every_steps)]
    next_event = min([total] + [(step // e + 1) * e for e in every if e > 0])
    return max(1, min(int(config.train.steps_per_loop), next_event - step))


def _summary_writers(workdir, chief):
    if not chief:
        return {"train": tf.summary.create_noop_writer(), "val": tf.summary.create_noop_writer()}
    return {split: tf.summary.create_file_writer(str(workdir / split)) for split in ("train", "val")}


def _progress(step, total, chief):
    """A tqdm bar (step, loss, img/s, ETA) on the chief; a silent stand-in elsewhere."""
    from tqdm import tqdm

    return tqdm(total=total, initial=step, unit="step", dynamic_ncols=True, disable=not chief,
                mininterval=1.0)


class _History:
    """metrics.jsonl: one JSON line per logged step, appended (so it survives a resume)."""

    def __init__(self, path):
        self.path = path
        self.records = []

    def add(self, record):
        self.records.append(record)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as stream:
                stream.write(json.dumps(record) + "\n")

    def last(self, split):
        matching = [r for r in self.records if r["split"] == split]
        return matching[-1] if matching else None

