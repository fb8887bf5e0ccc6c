"""Build sharded TFRecords + manifest.json from a source, resumably and by several workers.

The plan is a pure function of (number of items, settings): a seeded permutation splits the
items into train/val and each split into contiguous shards. So any process can write any
shard alone, which gives three properties with no coordination:
- atomic shards: a shard is written under a temporary name and renamed when complete,
  after its statistics file (parts/<shard>.json); a killed run leaves no half shard;
- resume: a run with the same arguments keeps the complete shards and writes the rest, and
  the bytes equal an uninterrupted run (same seed -> same plan -> same Examples, in order);
- workers: `--num_workers N --worker_index I` takes a disjoint contiguous range of shards;
  whichever worker finds every part present writes manifest.json (all write identical
  bytes, atomically, so a race is harmless). Re-running any worker merges again.

Decoding, Lab conversion and the prior histograms run in forked worker processes (threads
were GIL-bound: the build reached only 0.2 of the decode+resize ceiling); this process only
serializes Examples, runs the optional embedding backbone and writes, in plan order.

One module (about 370 lines) on purpose: plan, shard writing, completeness checks and the
manifest merge share one contract (which files make a shard complete), which beam_writer
also relies on; split apart, that contract would be spread over several files.
"""

import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import math
import multiprocessing
import os

import cv2
import numpy as np
import tensorflow as tf
import tqdm
from absl import logging

from koala import color
from koala.data import images, schema
from koala.paths import join

EXAMPLES_PER_SHARD = 1024  # automatic shard count: about 50 MB per shard at 128 px
PRIOR_SAMPLES_PER_IMAGE = 64  # strided ab samples per image for the prior (0.5M for 8k images)
EMBEDDING_BATCH = 32
CHUNK = 32  # images per worker task: amortizes inter-process traffic and prior histograms
SPLITS = ("train", "val")
PARTS_DIR = "parts"
MANIFEST = "manifest.json"
UNREADABLE = "unreadable"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything that decides the bytes of the output (recorded in the manifest)."""

    source: str
    size: int = 224
    resize: str = "pad"
    pad_value: int = 255
    val_fraction: float = 0.1
    shards: int = 0  # train shards; 0 chooses about EXAMPLES_PER_SHARD per shard
    seed: int = 0
    limit: int = 0
    min_chroma: float = images.DEFAULT_MIN_CHROMA
    max_pixels: int = images.DEFAULT_MAX_PIXELS
    embedding: str = ""
    embedding_weights: str = "imagenet"
    # the photo's size for the embedding backbone, cut from the source like the record's
    # image (0: it embeds the record's image, resized inside to its input)
    embedding_size: int = 0


@dataclasses.dataclass(frozen=True)
class Shard:
    split: str
    index: int
    count: int
    items: tuple  # source indices, in writing order

    @property
    def name(self):
        return f"{self.split}-{self.index:05d}-of-{self.count:05d}.tfrecord"


def plan(num_items, settings, needs_shuffle=True):
    """Seeded split of item indices into train/val shards (the same for every worker)."""
    order = np.arange(num_items)
    if needs_shuffle:
        order = np.random.default_rng(settings.seed).permutation(num_items)
    num_val = int(round(num_items * settings.val_fraction))
    by_split = {"val": order[:num_val], "train": order[num_val:]}
    train_shards = settings.shards or max(1, math.ceil(len(by_split["train"]) / EXAMPLES_PER_SHARD))
    val_shards = (math.ceil(train_shards * num_val / (num_items - num_val))
                  if num_items > num_val else math.ceil(num_val / EXAMPLES_PER_SHARD))
    counts = {"train": train_shards, "val": max(1, val_shards)}
    shards = []
    for split in SPLITS:
        indices = by_split[split]
        if len(indices) == 0:
            continue
        count = min(counts[split], len(indices))
        for index, chunk in enumerate(np.array_split(indices, count)):
            shards.append(Shard(split, index, count, tuple(int(i) for i in chunk)))
    return shards


def worker_shards(shards, num_workers, worker_index):
    """The contiguous, disjoint range of shards that one worker writes."""
    if not 0 <= worker_index < num_workers:
        raise ValueError(f"worker index {worker_index} is not in [0, {num_workers})")
    ranges = np.array_split(np.arange(len(shards)), num_workers)
    return [shards[i] for i in ranges[worker_index]]


def _ordered_map(pool, function, iterable, window):
    """pool.map that keeps at most `window` tasks in flight (bounded memory), in order."""
    pending = collections.deque()
    for item in iterable:
        pending.append(pool.submit(function, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _chunks(iterable, size):
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def process_item(settings, item):
    """(id, payload) -> Processed or Skip: never raises for a bad input (both writers)."""
    item_id, payload = item
    if isinstance(payload, OSError):
        return images.Skip(UNREADABLE, f"{item_id}: {payload.strerror}")
    try:
        return images.process(payload, settings.size, settings.resize, settings.pad_value,
                              settings.min_chroma, settings.max_pixels,
                              settings.embedding_size if settings.embedding else 0)
    except images.Skip as skip:
        return skip


def prior_sample(processed):
    """A strided subsample of the real (unpadded) pixels' ab, in Lab units, for the prior."""
    top, bottom, left, right = processed.content
    stride = max(1, int(math.sqrt((bottom - top) * (right - left) / PRIOR_SAMPLES_PER_IMAGE)))
    ab = processed.ab[top:bottom:stride, left:right:stride].reshape(-1, 2)
    return ab.astype(np.int16) - schema.AB_OFFSET


def _process_chunk(settings, chunk):
    """Worker task: a chunk of (id, payload) -> ([(id, Processed | Skip)], prior counts).

    The prior histograms are computed here, in the worker, because they are additive over
    samples and too slow for the writing process (a sort per call).
    """
    results = [(item[0], process_item(settings, item)) for item in chunk]
    samples = [prior_sample(r) for _, r in results if isinstance(r, images.Processed)]
    samples = np.concatenate(samples) if samples else np.zeros((0, 2), np.int16)
    return results, color.histogram_counts(samples), color.fine_histogram_counts(samples)


def embedding_input(processed):
    """The lightness a record's embedding is computed from (Settings.embedding_size)."""
    if processed.embedding_lightness is None:
        return processed.lightness
    return processed.embedding_lightness


def make_embedder(name, weights):
    """A function uint8 L [B, H, W] -> float16 [B, D]: the backbone's global embedding.

    koala.models.backbones.embedding gives the paper's vector (Inception-ResNet-v2 logits)
    or the pooled deepest features, at the backbone's own input size (L is resized inside).
    koala.models is imported here, not at module load: data never depends on models unless
    an embedding is asked for.
    """
    from koala.models import backbones

    model = backbones.embedding(name, weights=weights, from_l=True)

    def embed(lightness):
        scaled = color.scale_l(lightness[..., None].astype(np.float32) / schema.L_LEVELS)
        return np.asarray(model(tf.constant(scaled), training=False), np.float16)

    return embed


def skip_record(item_id, skip):
    """How the manifest lists one skipped input."""
    return {"id": item_id, "reason": skip.reason, "detail": skip.detail}


class ShardStats:
    """What a shard's part file records; prior counts start as 0 and add histograms."""

    def __init__(self):
        self.examples = 0
        self.skipped = []
        self.prior_counts = 0
        self.fine_prior_counts = 0

    def as_dict(self, shard, path, settings):
        return {"shard": shard.name, "split": shard.split, "items": len(shard.items),
                "examples": self.examples, "bytes": tf.io.gfile.stat(str(path)).length,
                "skipped": self.skipped, "settings": dataclasses.asdict(settings),
                "prior_counts": np.asarray(self.prior_counts).tolist(),
                "fine_prior_counts": np.asarray(self.fine_prior_counts).tolist()}


def _atomic_write_text(path, text):
    temporary = str(path) + ".incomplete"
    with tf.io.gfile.GFile(temporary, "w") as stream:
        stream.write(text)
    tf.io.gfile.rename(temporary, str(path), overwrite=True)


def finish_shard(out_dir, shard, stats, settings):
    """Publish a written `<shard>.incomplete`: its part file first, then the shard's name.

    A shard without its part is incomplete, so a kill between the two steps costs a rewrite,
    never a wrong manifest. Both writers end every shard here.
    """
    temporary = join(out_dir, shard.name + ".incomplete")
    part = join(out_dir, PARTS_DIR, shard.name + ".json")
    _atomic_write_text(part, json.dumps(stats.as_dict(shard, temporary, settings),
                                        sort_keys=True))
    tf.io.gfile.rename(temporary, join(out_dir, shard.name), overwrite=True)


def _write_shard(source, shard, out_dir, settings, pool, window, embedder, progress):
    temporary = join(out_dir, shard.name + ".incomplete")
    stats = ShardStats()
    batch = []

    def flush(writer):
        embeddings = (embedder(np.stack([embedding_input(p) for _, p in batch]))
                      if embedder else None)
        for row, (item_id, processed) in enumerate(batch):
            embedding = None if embeddings is None else embeddings[row]
            writer.write(schema.encode(item_id, processed.lightness, processed.ab, embedding))
        batch.clear()

    task = functools.partial(_process_chunk, settings)
    with tf.io.TFRecordWriter(str(temporary)) as writer:
        chunks = _chunks(source.read(shard.items), CHUNK)
        for results, prior, fine_prior in _ordered_map(pool, task, chunks, window):
            progress.update(len(results))
            stats.prior_counts = stats.prior_counts + prior
            stats.fine_prior_counts = stats.fine_prior_counts + fine_prior
            for item_id, result in results:
                if isinstance(result, images.Skip):
                    stats.skipped.append(skip_record(item_id, result))
                    continue
                stats.examples += 1
                batch.append((item_id, result))
                if len(batch) >= EMBEDDING_BATCH:
                    flush(writer)
        if batch:
            flush(writer)
    finish_shard(out_dir, shard, stats, settings)


def is_complete(out_dir, shard, settings):
    """Whether shard and part exist; raises if they were built with other settings."""
    part = join(out_dir, PARTS_DIR, shard.name + ".json")
    if not (tf.io.gfile.exists(join(out_dir, shard.name)) and tf.io.gfile.exists(part)):
        return False
    with tf.io.gfile.GFile(part) as stream:
        recorded = json.load(stream)["settings"]
    defaults = {field.name: field.default for field in dataclasses.fields(Settings)
                if field.default is not dataclasses.MISSING}  # of fields added since
    if {**defaults, **recorded} != dataclasses.asdict(settings):
        raise ValueError(f"{out_dir} holds shards built with other settings ({recorded}); "
                         "use a new --output or the same arguments")
    return True


def build(source, out_dir, settings, num_workers=1, worker_index=0, processes=None):
    """Write this worker's missing shards, then the manifest if every part exists.

    Returns the manifest dict, or None when other workers' shards are still missing.
    `processes` decode in parallel (default: one per core; 0 or 1 decodes in this process).
    """
    out_dir = str(out_dir)  # gs://, ram:// or local: pathlib would drop a slash of the URL
    tf.io.gfile.makedirs(join(out_dir, PARTS_DIR))
    if settings.limit:
        source.limit(settings.limit)
    shards = plan(len(source), settings, source.needs_shuffle)
    mine = worker_shards(shards, num_workers, worker_index)
    todo = [s for s in mine if not is_complete(out_dir, s, settings)]
    logging.info("%s: %d items, %d shards; worker %d/%d writes %d (%d already complete)",
                 source.description, len(source), len(shards), worker_index, num_workers,
                 len(todo), len(mine) - len(todo))
    embedder = (make_embedder(settings.embedding, settings.embedding_weights)
                if settings.embedding else None)
    processes = processes or os.cpu_count() or 1
    total = sum(len(s.items) for s in todo)
    if todo:  # built once here and shared copy-on-write by the forked workers (~2.5 s)
        images.lab_table()
        color.ab_bins()
    with _inline_cv2(), _pool(processes) as pool, \
            tqdm.tqdm(total=total, unit="img", desc="records", smoothing=0.1) as progress:
        for shard in todo:
            _write_shard(source, shard, out_dir, settings, pool, 2 * processes + 2, embedder,
                         progress)
    return merge_manifest(out_dir, shards, settings)


def _pool(processes):
    """Forked worker processes (they inherit the Lab table; they never touch TensorFlow)."""
    if processes <= 1:
        return concurrent.futures.ThreadPoolExecutor(1)
    context = multiprocessing.get_context("fork")
    return concurrent.futures.ProcessPoolExecutor(processes, mp_context=context)


@contextlib.contextmanager
def _inline_cv2():
    """OpenCV without its thread pool while workers fork, restored afterwards.

    The workers inherit this setting, so they never enter OpenCV's pool: a pool copied by
    fork() has no threads behind it, and touching it (even cv2.setNumThreads) can hang.
    Parallelism comes from the processes instead.
    """
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def merge_manifest(out_dir, shards, settings):
    """Sum every shard's part into manifest.json; None (no file) while parts are missing."""
    parts = []
    for shard in shards:
        path = join(out_dir, PARTS_DIR, shard.name + ".json")
        if not (tf.io.gfile.exists(path) and tf.io.gfile.exists(join(out_dir, shard.name))):
            logging.info("manifest not written yet: %s is missing", shard.name)
            return None
        with tf.io.gfile.GFile(path) as stream:
            parts.append(json.load(stream))
    counts = {}
    for split in SPLITS:
        mine = [p for p in parts if p["split"] == split]
        counts[split] = {"items": sum(p["items"] for p in mine),
                         "examples": sum(p["examples"] for p in mine),
                         "skipped": sum(len(p["skipped"]) for p in mine),
                         "shards": len(mine), "bytes": sum(p["bytes"] for p in mine)}
    skipped = sorted((s for p in parts for s in p["skipped"]), key=lambda s: s["id"])
    train = [p for p in parts if p["split"] == "train"]
    manifest = {
        "settings": dataclasses.asdict(settings),
        "schema": {"L": "uint8 round(L*255/100)", "ab": "uint8 clip(round(ab)+128, 0, 255)",
                   "embedding": "float16" if settings.embedding else None},
        "counts": counts,
        "skip_reasons": dict(collections.Counter(s["reason"] for s in skipped)),
        "skipped": skipped,
        "shards": [{"name": p["shard"], "examples": p["examples"], "bytes": p["bytes"]}
                   for p in parts],
        "prior": {
            "note": "ab of the train split, real pixels only (no padding), strided subsample "
                    f"of about {PRIOR_SAMPLES_PER_IMAGE} pixels per image",
            "bins": color.ab_bins().tolist(),
            "counts": _sum_counts([p["prior_counts"] for p in train], len(color.ab_bins())),
            "fine_edges": color.FINE_EDGES.tolist(),
            "fine_counts": _sum_counts([p["fine_prior_counts"] for p in train],
                                       (len(color.FINE_EDGES) - 1,) * 2),
        },
    }
    _atomic_write_text(join(out_dir, MANIFEST), json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def _sum_counts(counts, shape):
    total = np.zeros(shape, np.int64)
    for one in counts:
        total += np.asarray(one, np.int64)
    return total.tolist()
