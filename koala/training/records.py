"""The records an experiment declares: named from the declaration, built on first use,
checked when they exist, and read as (features, target) batches in the experiment's colour
space.

Experiments declare what they need (source, size, embedding backbone and its weights), not a
folder, so experiments that need the same records share them. Which pipeline an experiment
trains on (these records, or photo folders) is koala.training.inputs' registry; the records'
ab prior is koala.data.prior's.
"""

import json
import os

import tensorflow as tf
from absl import logging

from koala import color
from koala.paths import join
from koala.training.config import ConfigError, weights_help


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
    return {**features, "L": yuv[..., :1] * 2.0 - 1.0}, yuv[..., 1:] / color.UV_SCALE


def recorded_embedding_dim(records):
    """D of the embeddings stored in the records (the first train example says it)."""
    from koala.data import pipeline

    first = pipeline.matching_files(records_pattern(records, "train"))[0]
    for serialized in tf.data.TFRecordDataset(first).take(1):
        feature = tf.train.Example.FromString(serialized.numpy()).features.feature
        if "embedding_dim" in feature:
            return int(feature["embedding_dim"].int64_list.value[0])
    raise ConfigError(f"{first}: its examples hold no embedding")


def manifest(records):
    """The records' manifest.json as a dict ({} when absent)."""
    path = f"{records}/manifest.json"
    return json.loads(tf.io.gfile.GFile(path).read()) if tf.io.gfile.exists(path) else {}
