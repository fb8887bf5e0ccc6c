"""The training loop of every Koala experiment, on one CPU or a TPU pod alike.

Why a custom loop and not `model.fit()`: Keras 3 `fit()` fails under
MultiWorkerMirroredStrategy (keras-team/keras#20585). Here each replica computes its loss
summed over its examples and divided by the *global* batch, the optimizer all-reduces
(sums) the gradients, so every strategy takes the same step as one device on the whole
batch (tests/test_train.py checks default == Mirrored == two MWMS workers).

Fault tolerance: tf.train.CheckpointManager saves (step, model, optimizer) every
`checkpoint.every_steps` and at the end; the same command after a crash (even SIGKILL)
resumes from the newest checkpoint and stops at `train.steps`, with the weights of a run
that was never stopped: the records' data order is a function of the step
(koala.data.pipeline), so the resumed run reads the batches it would have read. A NaN/inf
loss stops the run with NonFiniteLoss before anything else is saved, so the last good
checkpoint survives.

Records: an experiment declares what it needs (source, size, embedding backbone and its
weights); `ensure_records` builds them on first use under a name derived from that
(`records_dir`) and checks existing ones. Bundles take only {"L"}: a model trained on
precomputed embeddings is saved with its backbone in front (`inference_model`). Every path
(records, workdir, checkpoints, TensorBoard, bundle) may be a tf.io.gfile URL.

Hooks for code that trains its own model: `train(config, workdir, model=..., loss_fn=...,
dataset_fn=...)`; `model` may be a function returning a keras.Model (built in the
strategy's scope) whose outputs may be a dict; `loss_fn(ab_true, outputs)` returns a
scalar, per-example or per-pixel loss.
"""

import importlib
import json
import os
import posixpath
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


class ConfigError(ValueError):
    """A user error in the experiment, its overrides or its records: `koala train` prints
    the message as one line and exits 1."""


def join(base, *names):
    """A path under `base` as a string: pathlib would turn gs://b/x into gs:/b/x."""
    return posixpath.join(str(base), *names) if "://" in str(base) else \
        os.path.join(str(base), *names)


# --------------------------------------------------------------------------- experiments

def _experiments_package():
    """The top-level `experiments` package: from the checkout, else as installed."""
    return importlib.import_module("experiments")


def experiment_names():
    """Experiments shipped in experiments/ (each a module with get_config)."""
    folder = os.path.dirname(_experiments_package().__file__)
    return sorted(name[:-3] for name in os.listdir(folder) if name.endswith(".py")
                  and not name.startswith("_") and name != "common.py")


def load_config(spec):
    """"NAME[:ARG]" or "path/to/file.py[:ARG]" -> the experiment's ConfigDict.

    ARG is the scale variant (tpu, gpu, cpu, tiny), as big_vision's `config.py:runlocal`.
    A .py path is loaded as a module of the `experiments` package, so it may import
    `experiments.common` like the shipped ones.
    """
    import importlib.util

    target, _, arg = spec.partition(":")
    if target.endswith(".py"):
        if not os.path.isfile(target):
            raise ConfigError(f"experiment file {target} does not exist")
        _experiments_package()
        name = os.path.basename(target)[:-3]
        module_spec = importlib.util.spec_from_file_location(f"experiments.{name}", target)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    elif target in experiment_names():
        module = importlib.import_module(f"experiments.{target}")
    else:
        raise ConfigError(f"unknown experiment {target!r}; known: {', '.join(experiment_names())}")
    try:
        return module.get_config(arg or None)
    except ValueError as error:  # an unknown variant
        raise ConfigError(f"{spec}: {error}") from None


def apply_overrides(config, overrides):
    """{"train.batch_size": "64", ...} -> config with each value parsed to the field's type."""
    for dotted, text in overrides.items():
        *parents, leaf = dotted.split(".")
        node = config
        for key in parents:
            if key not in node:
                raise ConfigError(f"--config.{dotted}: the experiment has no section {key!r}")
            node = node[key]
        if leaf not in node:
            raise ConfigError(f"--config.{dotted}: the experiment has no field {dotted!r}")
        try:
            node[leaf] = _parse_like(node[leaf], text)
        except (ValueError, TypeError) as error:
            raise ConfigError(f"--config.{dotted}={text}: {error}") from None
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
    if text == "None" and (current is None or isinstance(current, str)):
        return None
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
        raise ConfigError(f"unknown strategy {name!r}; choose one of {STRATEGIES}")
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
            or os.path.exists("/dev/accel0"):
        return "tpu"
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    if sum(len(cluster.get(k, [])) for k in ("chief", "worker")) > 1:
        return "multiworker"
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return "mirrored"
    return "default"


def _tpu_strategy(tpu=""):
    """TPUStrategy as TensorFlow's TPU guide sets it up.

    On a TPU VM (Cloud TPU VMs and Colab's TPU runtime: the chips are /dev/accel*) the
    resolver is tpu="local" and there is no remote cluster to connect to; otherwise (a
    named Cloud TPU, or a legacy Colab TPU node found through COLAB_TPU_ADDR) it connects
    first.
    """
    if not tpu and (os.path.exists("/dev/accel0") or os.environ.get("TPU_ACCELERATOR_TYPE")):
        tpu = "local"
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
    if tpu != "local":
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
    return join(workdir, f"worker-{strategy.cluster_resolver.task_id}")


# --------------------------------------------------------------------------- precision

def precision_policy(name, strategy):
    """"auto" -> bfloat16 on TPU, float16 (+ loss scaling) on GPU, float32 on CPU."""
    if name not in PRECISIONS:
        raise ConfigError(f"unknown precision {name!r}; choose one of {PRECISIONS}")
    if name != "auto":
        return name
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "mixed_bfloat16"
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"


# --------------------------------------------------------------------------- data

def records_dir(config):
    """Where the experiment's records live: data.records, else a name from the declaration.

    Experiments declare what they need (source, size, embedding backbone and its weights,
    how many images), not a folder, so experiments that need the same records share them:
    records/photos-224px, records/photos-224px-inception_resnet_v2, records/cifar10-32px-first48.
    """
    data = config.data
    if data.records:
        return str(data.records)
    parts = [_source_tag(str(data.source)), f"{int(data.size)}px"]
    if data.with_embedding and data.embedding_backbone:
        parts.append(str(data.embedding_backbone))
        weights = embedding_weights(config)
        if weights != "imagenet":
            parts.append(os.path.basename(weights).split(".")[0])
    if int(data.limit):
        parts.append(f"first{int(data.limit)}")
    return join("records", "-".join(parts))


def _source_tag(source):
    """../shared/data/photos/train -> photos; tfds:cifar10:train -> cifar10."""
    if source.startswith("tfds:"):
        return source.split(":")[1]
    parts = [p for p in source.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    while len(parts) > 1 and parts[-1] in ("train", "val", "test", "images"):
        parts.pop()
    return parts[-1] if parts else "records"


def embedding_weights(config):
    """The weights of the backbone that embeds the records: model.kwargs.weights, one flag
    for both routes (the backbone in the graph and the one `koala records` runs)."""
    weights = config.model.kwargs.get("weights", "imagenet")
    if weights in (None, "", "None"):
        raise ConfigError(
            f"{config.experiment}: the records' embedding backbone {config.data.embedding_backbone}"
            f" needs weights the bundle can rebuild (random ones differ per build): pass "
            f"--config.model.kwargs.weights=FILE (e.g. saved from a random-init backbone) "
            f"or imagenet")
    if weights != "imagenet" and "://" not in weights:
        weights = os.path.abspath(weights)
        if not os.path.isfile(weights):
            raise ConfigError(f"--config.model.kwargs.weights: {weights} does not exist")
    return weights


def records_settings(config):
    """The koala.data.writer.Settings the experiment's records are built with."""
    from koala.data import writer  # imported late: only records need the writer

    data = config.data
    embedding = str(data.embedding_backbone) if data.with_embedding else ""
    return writer.Settings(source=str(data.source), size=int(data.size),
                           val_fraction=float(data.val_fraction), limit=int(data.limit),
                           embedding=embedding,
                           embedding_weights=embedding_weights(config) if embedding else
                           "imagenet")


def ensure_records(config):
    """The records directory of `config`, built from `data.source` on first use.

    Records that exist are checked against what the experiment needs (size, embedding), so
    a mismatch is one line naming the folder instead of a shape error at step 1.
    """
    records = records_dir(config)
    found = manifest(records)
    if found:
        _check_records(config, records, found)
        return records
    if not config.data.source:
        raise ConfigError(f"{records}: no records (no manifest.json) and no data.source to "
                          f"build them from; run `make records MODEL={config.experiment}` or "
                          f"pass --config.data.source=FOLDER")
    from koala.data import sources, writer
    from koala.models import backbones

    settings = records_settings(config)
    logging.info("building records %s from %s", records, settings.source)
    try:
        source = sources.open_source(settings.source)
        built = writer.build(source, records, settings)
    except backbones.WeightsUnavailableError as error:
        raise ConfigError(weights_help(error)) from None
    except (sources.TfdsUnavailable, FileNotFoundError, ValueError) as error:
        raise ConfigError(f"records {records}: {error} (the experiment's data.source: pass "
                          f"--config.data.source=FOLDER, make: DATASET=FOLDER)") from None
    if built is None or not built["counts"]["train"]["examples"]:
        raise ConfigError(f"{records}: no usable training images in {settings.source}")
    return records


def weights_help(error):
    """A missing-weights error as one line, ending with the flags that take a local file."""
    first = " ".join(str(error).split())
    return (f"{first} With `koala train` pass --config.model.kwargs.weights=FILE (make: "
            f"WEIGHTS=FILE); with `koala records`, --embedding_weights FILE.")


def _check_records(config, records, found):
    if not config.data.with_embedding:
        return
    recorded = found.get("settings", {}).get("embedding")
    if not recorded:
        raise ConfigError(
            f"{records} holds no embedding, but {config.experiment} reads one from "
            f"{config.data.embedding_backbone}: build them with `make records MODEL="
            f"{config.experiment}` or pass another --config.data.records")
    if config.data.embedding_backbone and recorded != config.data.embedding_backbone:
        raise ConfigError(f"{records}: its embedding is from {recorded}, the experiment "
                          f"wants {config.data.embedding_backbone}")


def default_dataset_fn(config, start_step=0):
    """(split, global batch, input context) -> batches, from records or photo folders.

    `start_step`: the step a resumed run starts at; the records' training stream is skipped
    to where an uninterrupted run would be (koala.data.pipeline), so resuming is exact.
    """
    if config.data.get("pipeline", "records") == "photo_crops":
        from koala.data import photo_crops

        def from_photos(split, batch, context=None):
            if split == "train":
                return photo_crops.train_dataset(config.data.train_photos, int(config.data.size),
                                                 batch, int(config.train.seed), context)
            return photo_crops.val_dataset(config.data.val_photos, int(config.data.size),
                                           batch, int(config.data.get("val_every", 1)))

        return from_photos
    config.data.records = ensure_records(config)
    return lambda split, batch, context=None: make_dataset(config, split, batch, context,
                                                           start_step)


def records_pattern(records, split):
    return f"{records}/{split}-*.tfrecord"


def make_dataset(config, split, batch_size, input_context=None, start_step=0):
    """(features, target) batches of `split` at data.size in data.color_space; train is
    endless and starts at `start_step`.

    `batch_size` is global; with an input_context koala.data shards the files and divides it.
    """
    import koala.data

    training = split == "train"
    start_example = 0
    if training and start_step:
        start_example = int(start_step) * _examples_per_pipeline_step(batch_size, input_context)
    dataset = koala.data.dataset(
        records_pattern(config.data.records, split), batch_size, training=training,
        with_embedding=bool(config.data.with_embedding), seed=int(config.train.seed),
        input_context=input_context, start_example=start_example)
    size = int(config.data.size)
    convert = {"lab": lambda f, t: (f, t), "yuv": lab_to_yuv}[config.data.color_space]

    def prepare(features, target):
        features = dict(features, L=tf.image.resize(features["L"], (size, size)))
        return convert(features, tf.image.resize(target, (size, size)))

    return dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)


def _examples_per_pipeline_step(global_batch, input_context):
    """Examples one input pipeline yields per training step (all its local replicas)."""
    if input_context is None:
        return int(global_batch)
    replicas = input_context.num_replicas_in_sync // input_context.num_input_pipelines
    return input_context.get_per_replica_batch_size(global_batch) * replicas


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


def recorded_embedding_dim(records):
    """D of the embeddings stored in the records (the first train example says it)."""
    from koala.data import pipeline

    first = pipeline.matching_files(records_pattern(records, "train"))[0]
    for serialized in tf.data.TFRecordDataset(first).take(1):
        feature = tf.train.Example.FromString(serialized.numpy()).features.feature
        if "embedding_dim" in feature:
            return int(feature["embedding_dim"].int64_list.value[0])
    raise ConfigError(f"{first}: its examples hold no embedding")


def inference_model(model, config):
    """The model a bundle holds: one that takes only {"L"}.

    A model trained on precomputed embeddings gets the backbone that computed them (the
    records' manifest names it and its weights) in front of its "embedding" input, so
    colorize, evaluate, export and study feed it the photo alone, as any other bundle.
    """
    names = [tensor.name.split(":")[0] for tensor in model.inputs]
    if "embedding" not in names:
        return model
    from koala.models import backbones

    settings = manifest(config.data.records).get("settings", {})
    name = settings.get("embedding") or config.data.embedding_backbone
    weights = settings.get("embedding_weights", "imagenet")
    try:
        embedder = backbones.embedding(name, weights=weights, from_l=True)
    except backbones.WeightsUnavailableError as error:
        raise ConfigError(weights_help(error)) from None
    lightness = keras.Input(model.inputs[names.index("L")].shape[1:], name="L")
    outputs = model({"L": lightness, "embedding": embedder(lightness)})
    return keras.Model({"L": lightness}, outputs, name=f"{model.name}_with_{name}")


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
    if name == "huber_bins":
        weight = float(config.loss.get("logit_weight", 1.0))
        return lambda y_true, outputs: losses.huber_bins(y_true, outputs, weight)
    return getattr(losses, name)


def warm_start(model, source):
    """Copies the weights of bundle `source` (e.g. "default") into `model` before step 0.

    How a long schedule continues on a fresh machine where only the repository survives:
    the committed bundle gives the weights, the optimizer starts fresh. A bundle that wraps
    the trained model (the default's blend of two heads) is searched for a sub-model of the
    same name.
    """
    trained = bundle.load(source).model
    inner = [layer for layer in trained.layers if layer.name == model.name]
    trained = inner[0] if inner else trained
    model.set_weights(trained.get_weights())
    logging.info("initialised %s from the bundle %s", model.name, source)


def ab_prior(records):
    """Smoothed p(ab bin) of the training records (Zhang's prior), from the manifest."""
    counts = manifest(records).get("prior", {}).get("counts")
    if counts is None:
        raise ConfigError(f"{records}/manifest.json has no ab histogram: rebuild the records "
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
        raise ConfigError(f"unknown schedule {sched.name!r} (constant or cosine)")
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
        raise ConfigError(f"unknown optimizer {opt.name!r}")
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
        "train" must repeat). Resuming is exact only for the records (the default).
      strategy: a tf.distribute strategy; default: select_strategy("auto").
    Paths may be any tf.io.gfile URL (gs://, ram://) or local.
    """
    workdir = str(workdir)
    strategy = strategy or select_strategy("auto")
    policy = precision_policy(config.precision, strategy)
    keras.mixed_precision.set_dtype_policy(policy)
    keras.utils.set_random_seed(int(config.train.seed))
    if dataset_fn is None and config.data.get("pipeline", "records") == "records":
        config.data.records = ensure_records(config)
        if config.data.with_embedding:
            config.model.kwargs.embedding_dim = recorded_embedding_dim(config.data.records)
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
    manager = tf.train.CheckpointManager(checkpoint, join(own_dir, "checkpoints"),
                                         max_to_keep=int(config.checkpoint.keep))
    latest = tf.train.latest_checkpoint(join(workdir, "checkpoints"))  # the chief's, for all
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        logging.info("resumed from %s at step %d", latest, int(step_var))
    elif config.model.get("init"):
        warm_start(model, config.model.init)
    step, total = int(step_var.numpy()), int(config.train.steps)
    if dataset_fn is None:
        dataset_fn = default_dataset_fn(config, start_step=step)

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
            raise ConfigError("the val split is empty: records need val-*.tfrecord shards")
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
    history = _History(join(workdir, "metrics.jsonl") if chief else None, step)
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
                f"{tf.train.latest_checkpoint(join(workdir, 'checkpoints'))} "
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
            history.flush()
        if step % int(config.eval.every_steps) == 0 or step == total:
            result, grid = evaluate()
            logging.info("step %d val %s", step, result)
            history.add({"step": step, "split": "val", **result})
            with writers["val"].as_default(step=step):
                for name, value in result.items():
                    tf.summary.scalar(name, value)
                tf.summary.image("gray|prediction|truth", grid, max_outputs=grid.shape[0])
            history.flush()
    progress.close()
    for writer in writers.values():
        writer.flush()
    history.flush()
    bundle.save(join(own_dir, "bundle"), inference_model(model, config), bundle_meta(config, kind))
    if not chief and tf.io.gfile.exists(join(own_dir, "checkpoints")):
        tf.io.gfile.rmtree(join(own_dir, "checkpoints"))  # it only mirrored the chief's
    return {"step": step, "train_loss": loss, "val": history.last("val"),
            "workdir": str(workdir)}


def bundle_meta(config, kind):
    """What colorize/export need besides the model: size, output kind, colour space, fit.

    Records written with resize "pad" (the writer's default, Deep Koalarization's) train on
    white-padded squares, so inference pads the same way ("fit": "pad").
    """
    meta = {"model": config.model.name, "config": config.model.kwargs.to_dict(),
            "size": int(config.data.size), "output": kind, "name": config.experiment,
            "color_space": config.data.color_space}
    if config.data.get("pipeline", "records") == "records" and config.data.records:
        resize = manifest(config.data.records).get("settings", {}).get("resize")
        if resize:
            meta["fit"] = "pad" if resize == "pad" else "aspect"
    return meta


def _steps_until_event(step, total, config):
    """Steps to run in one tf.function call: up to steps_per_loop, stopping at events."""
    every = [int(config.checkpoint.every_steps), int(config.eval.every_steps)]
    next_event = min([total] + [(step // e + 1) * e for e in every if e > 0])
    return max(1, min(int(config.train.steps_per_loop), next_event - step))


def _summary_writers(workdir, chief):
    if not chief:
        return {"train": tf.summary.create_noop_writer(), "val": tf.summary.create_noop_writer()}
    return {split: tf.summary.create_file_writer(join(workdir, split)) for split in ("train", "val")}


def _progress(step, total, chief):
    """A tqdm bar (step, loss, img/s, ETA) on the chief; a silent stand-in elsewhere."""
    from tqdm import tqdm

    return tqdm(total=total, initial=step, unit="step", dynamic_ncols=True, disable=not chief,
                mininterval=1.0)


class _History:
    """metrics.jsonl: one JSON line per logged step, consistent with the checkpoint.

    The file is rewritten whole at every checkpoint and evaluation (gs:// cannot append);
    a resumed run keeps the lines up to the step it resumes at, so the file never lists
    steps whose weights were lost.
    """

    def __init__(self, path, resumed_step=0):
        self.path = path
        self.records = []
        if path is not None and resumed_step and tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path) as stream:
                lines = [json.loads(line) for line in stream if line.strip()]
            self.records = [r for r in lines if r["step"] <= resumed_step]

    def add(self, record):
        self.records.append(record)

    def flush(self):
        if self.path is None:
            return
        tf.io.gfile.makedirs(posixpath.dirname(self.path) or ".")
        with tf.io.gfile.GFile(self.path + ".incomplete", "w") as stream:
            stream.write("".join(json.dumps(r) + "\n" for r in self.records))
        tf.io.gfile.rename(self.path + ".incomplete", self.path, overwrite=True)

    def last(self, split):
        matching = [r for r in self.records if r["split"] == split]
        return matching[-1] if matching else None
