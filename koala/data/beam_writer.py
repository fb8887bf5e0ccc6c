"""Build the local writer's records with Apache Beam (DirectRunner, Dataflow, Flink, Spark).

Same plan, same bytes: the seeded `writer.plan` decides which item goes to which shard at
which position, so the Beam build writes the very shards, part files and manifest.json of
`writer.build` for the same source and settings, while the runner schedules, retries and
scales the work. The pipeline:

  tasks (one JSON line per chunk of a shard, in parts/) -> Reshuffle -> per chunk, in the
  worker: read, decode, Lab, [embedding: the backbone loaded once per worker in
  DoFn.setup], write the chunk's Examples to a chunk file
  skipped inputs -> a dead-letter output, keyed by shard (a bad file never fails the job)
  ab samples -> the prior histograms, a CombineFn per shard
  CoGroupByKey(shard) -> chunk files joined in plan order into the shard + its part file
  -> manifest.json (writer.merge_manifest, as the local writer)

Images are written where they are decoded; only paths and small records go through the
shuffle. Beam's WriteToTFRecord is not used: it chooses the shard of each record and the
order within it, so the output could not equal the local writer's, nor one run the next.
Tasks are a text file rather than beam.Create because at ImageNet scale the item list is
~100 MB, too big for a job graph; ReadFromText splits it across workers instead. Files are
read through Beam's FileSystems and written through tf.io.gfile, so gs:// works on Dataflow.
"""

import json
import os
import shlex
import shutil
import uuid

import apache_beam as beam
import numpy as np
import tensorflow as tf
from absl import logging
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from koala import color
from koala.data import images, schema, sources, writer
from koala.paths import join

TASKS = "beam-tasks.jsonl"  # under parts/, removed when the build is done
CHUNKS_DIR = "beam-chunks"  # under parts/: one TFRecord file per task, joined into shards
CHUNKS, DEAD_LETTER, PRIOR = "chunks", "dead_letter", "prior"
COPY_BUFFER = 8 << 20
FAILED = "failed"  # reason code of an input whose processing raised an unexpected error
PRIOR_FLUSH_SAMPLES = 1 << 16  # the CombineFn histograms pending samples in bulk


def remote_folder_source(root):
    """Every image file under a gs:// (or other Beam filesystem) folder, sorted like
    sources.folder_source, with ids relative to the root."""
    root = root.rstrip("/")
    matches = FileSystems.match([root + "/**"])[0].metadata_list
    paths = sorted(m.path for m in matches
                   if os.path.splitext(m.path)[1].lower() in sources.IMAGE_SUFFIXES)
    return sources.FileSource(paths, root, f"folder {root}")


def pipeline_options(beam_options="", processes=0):
    """--beam_options string -> PipelineOptions; without a --runner, the DirectRunner in
    multi_processing mode with one worker per core (user flags come last and win)."""
    defaults = ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                f"--direct_num_workers={processes or os.cpu_count() or 1}"]
    return PipelineOptions(defaults + shlex.split(beam_options))


def write_tasks(source, shards, path):
    """One JSON line per chunk of writer.CHUNK items: the shard, the first position and
    either the files (id, path) or, for tfds, the contiguous index range to read."""
    with tf.io.gfile.GFile(path, "w") as stream:
        for shard in shards:
            for start in range(0, len(shard.items), writer.CHUNK):
                indices = shard.items[start:start + writer.CHUNK]
                task = {"shard": shard.name, "position": start}
                if isinstance(source, sources.FileSource):
                    task["files"] = [[source.item_id(i), str(source.paths[i])] for i in indices]
                else:
                    task["range"] = [indices[0], indices[-1] + 1]
                stream.write(json.dumps(task) + "\n")


class EncodeChunk(beam.DoFn):
    """A task line -> its Examples written to a chunk file, in plan order.

    Outputs (shard, (position, chunk path, examples)); per skipped input a dead-letter record
    (shard, (position, record)); per example (shard, ab samples) for the prior. Images never
    travel through the shuffle: only paths and small records do.
    """

    def __init__(self, settings, chunks_dir, tfds_source=None):
        self.settings, self.chunks_dir, self.tfds_source = settings, chunks_dir, tfds_source
        self.embed = None

    def setup(self):
        import cv2

        cv2.setNumThreads(1)  # parallelism comes from the runner's workers, one per core
        images.lab_table()  # built once per worker (~1.6 s), then every lookup is cheap
        if self.settings.embedding:  # the backbone is loaded once per worker, not per chunk
            self.embed = writer.make_embedder(self.settings.embedding,
                                              self.settings.embedding_weights)

    def _read(self, task):
        if "range" in task:
            yield from self.tfds_source.read(range(*task["range"]))
            return
        for item_id, path in task["files"]:
            try:
                with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                    yield item_id, f.read()
            except OSError as error:
                yield item_id, error

    def _decode(self, task):
        """(position, id, Processed | Skip) per item of the task; never raises."""
        for offset, (item_id, payload) in enumerate(self._read(task)):
            try:
                result = writer.process_item(self.settings, (item_id, payload))
            except Exception as error:  # a bug or a library failure: recorded, never fatal
                result = images.Skip(FAILED, f"{type(error).__name__}: {error}")
            yield task["position"] + offset, item_id, result

    def process(self, line):
        task = json.loads(line)
        shard, examples = task["shard"], []
        for position, item_id, result in self._decode(task):
            if isinstance(result, images.Skip):
                record = writer.skip_record(item_id, result)
                yield beam.pvalue.TaggedOutput(DEAD_LETTER, (shard, (position, record)))
                continue
            yield beam.pvalue.TaggedOutput(PRIOR, (shard, writer.prior_sample(result)))
            examples.append((item_id, result))
        embeddings = (self.embed(np.stack([writer.embedding_input(p) for _, p in examples]))
                      if self.embed and examples else [None] * len(examples))
        # a unique name per attempt: a retried or speculative duplicate never collides
        path = join(self.chunks_dir, f"{shard}-{task['position']:09d}-{uuid.uuid4().hex}")
        with tf.io.TFRecordWriter(path) as records:
            for (item_id, processed), embedding in zip(examples, embeddings):
                records.write(schema.encode(item_id, processed.lightness, processed.ab,
                                            embedding))
        yield shard, (task["position"], path, len(examples))


class PriorHistograms(beam.CombineFn):
    """ab samples [N, 2] -> (coarse counts, fine counts), the manifest's prior.

    Samples wait in the accumulator and are histogrammed PRIOR_FLUSH_SAMPLES at a time:
    a histogram call costs a sort, too much once per image. Counts add exactly, so the
    result equals the local writer's per-chunk sums.
    """

    def create_accumulator(self):
        empty = np.zeros((0, 2), np.int16)
        return color.histogram_counts(empty), color.fine_histogram_counts(empty), []

    def _flush(self, accumulator, force=False):
        counts, fine, pending = accumulator
        if pending and (force or sum(len(p) for p in pending) >= PRIOR_FLUSH_SAMPLES):
            samples = np.concatenate(pending)
            counts = counts + color.histogram_counts(samples)
            fine = fine + color.fine_histogram_counts(samples)
            pending = []
        return counts, fine, pending

    def add_input(self, accumulator, samples):
        counts, fine, pending = accumulator
        return self._flush((counts, fine, pending + [samples]))

    def merge_accumulators(self, accumulators):
        accumulators = list(accumulators)
        counts = sum(a[0] for a in accumulators)
        fine = sum(a[1] for a in accumulators)
        return self._flush((counts, fine, [p for a in accumulators for p in a[2]]))

    def extract_output(self, accumulator):
        counts, fine, _ = self._flush(accumulator, force=True)
        return counts, fine


class WriteShard(beam.DoFn):
    """(shard name, grouped chunks / skips / prior) -> the shard + its part file.

    TFRecord files concatenate (each record carries its own length and CRCs), so the
    chunk files joined in position order are byte for byte the shard the local writer
    writes. The shard's plan entry is recomputed from (number of items, settings): the plan
    is a pure function, so no item list travels with the job.
    """

    def __init__(self, out_dir, num_items, settings, needs_shuffle):
        self.out_dir, self.num_items = out_dir, num_items
        self.settings, self.needs_shuffle = settings, needs_shuffle
        self.shards = None

    def setup(self):
        shards = writer.plan(self.num_items, self.settings, self.needs_shuffle)
        self.shards = {shard.name: shard for shard in shards}

    def process(self, element):
        name, grouped = element
        chunks = sorted(grouped[CHUNKS])
        if not writer.is_complete(self.out_dir, self.shards[name], self.settings):
            self._write(name, grouped, chunks)  # a retry after success has nothing to do
        for _, path, _ in chunks:
            if tf.io.gfile.exists(path):
                tf.io.gfile.remove(path)
        yield name

    def _write(self, name, grouped, chunks):
        stats = writer.ShardStats()
        stats.skipped = [record for _, record in sorted(grouped[DEAD_LETTER],
                                                        key=lambda pair: pair[0])]
        priors = list(grouped[PRIOR]) or [PriorHistograms().extract_output(
            PriorHistograms().create_accumulator())]
        stats.prior_counts, stats.fine_prior_counts = priors[0]
        stats.examples = sum(examples for _, _, examples in chunks)
        with tf.io.gfile.GFile(join(self.out_dir, name + ".incomplete"), "wb") as shard:
            for _, path, _ in chunks:
                with tf.io.gfile.GFile(path, "rb") as chunk:
                    shutil.copyfileobj(chunk, shard, COPY_BUFFER)
        writer.finish_shard(self.out_dir, self.shards[name], stats, self.settings)


def run_pipeline(source, out_dir, settings, tasks_path, options):
    """The Beam graph from the task file to written shards and part files."""
    tfds_source = None if isinstance(source, sources.FileSource) else source
    chunks_dir = join(out_dir, writer.PARTS_DIR, CHUNKS_DIR)
    tf.io.gfile.makedirs(chunks_dir)
    with beam.Pipeline(options=options) as pipeline:
        encoded = (pipeline
                   | "ReadTasks" >> beam.io.ReadFromText(tasks_path)
                   | "Spread" >> beam.Reshuffle()
                   | "EncodeChunks" >> beam.ParDo(EncodeChunk(settings, chunks_dir, tfds_source))
                   .with_outputs(DEAD_LETTER, PRIOR, main=CHUNKS))
        prior = encoded[PRIOR] | "Prior" >> beam.CombinePerKey(PriorHistograms())
        _ = ({CHUNKS: encoded[CHUNKS], DEAD_LETTER: encoded[DEAD_LETTER], PRIOR: prior}
             | "ByShard" >> beam.CoGroupByKey()
             | "WriteShards" >> beam.ParDo(WriteShard(out_dir, len(source), settings,
                                                      source.needs_shuffle)))
    tf.io.gfile.rmtree(chunks_dir)  # what is left are failed attempts' chunks


def build(source, out_dir, settings, beam_options="", processes=0):
    """writer.build's output, built by a Beam pipeline; returns the manifest dict.

    Complete shards already in out_dir are kept (a rerun finishes a failed job), and shards
    of other settings are refused, as in the local writer.
    """
    out_dir = str(out_dir).rstrip("/")
    tf.io.gfile.makedirs(join(out_dir, writer.PARTS_DIR))
    if settings.limit:
        source.limit(settings.limit)
    shards = writer.plan(len(source), settings, source.needs_shuffle)
    todo = [shard for shard in shards if not writer.is_complete(out_dir, shard, settings)]
    logging.info("%s: %d items, %d shards; Beam writes %d (%d already complete)",
                 source.description, len(source), len(shards), len(todo),
                 len(shards) - len(todo))
    if todo:
        tasks_path = join(out_dir, writer.PARTS_DIR, TASKS)
        write_tasks(source, todo, tasks_path)
        run_pipeline(source, out_dir, settings, tasks_path,
                     pipeline_options(beam_options, processes))
        tf.io.gfile.remove(tasks_path)
    return writer.merge_manifest(out_dir, shards, settings)
