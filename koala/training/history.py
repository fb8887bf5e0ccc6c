"""What a run reports as it goes: metrics.jsonl, TensorBoard summaries and a progress bar."""

import json
import posixpath
import time

import tensorflow as tf

from koala.paths import join


class History:
    """metrics.jsonl and the train/ and val/ TensorBoard logs of a run (the chief's only).

    metrics.jsonl holds one JSON line per logged step, consistent with the checkpoint: it is
    rewritten whole at every checkpoint and evaluation (gs:// cannot append); a resumed run
    keeps the lines up to the step it resumes at, so the file never lists steps whose
    weights were lost. Each line carries its wall-clock `time` (how long runs took).
    """

    def __init__(self, workdir, chief=True, resumed_step=0):
        self.path = join(workdir, "metrics.jsonl") if chief else None
        self.records = []
        if self.path is not None and resumed_step:
            self.records = [r for r in read(workdir) if r["step"] <= resumed_step]
        self.writers = {split: tf.summary.create_file_writer(join(workdir, split)) if chief
                        else tf.summary.create_noop_writer() for split in ("train", "val")}

    def train(self, step, loss, images_per_s, learning_rate):
        with self.writers["train"].as_default(step=step):
            tf.summary.scalar("loss", loss)
            tf.summary.scalar("learning_rate", learning_rate)
            tf.summary.scalar("images_per_second", images_per_s)
        self.records.append({"step": step, "split": "train", "loss": loss, "img_s": images_per_s,
                             "time": time.time()})

    def val(self, step, result, grid):
        self.records.append({"step": step, "split": "val", **result, "time": time.time()})
        with self.writers["val"].as_default(step=step):
            for name, value in result.items():
                tf.summary.scalar(name, value)
            tf.summary.image("gray|prediction|truth", grid, max_outputs=grid.shape[0])
        self.flush()

    def flush(self):
        if self.path is None:
            return
        tf.io.gfile.makedirs(posixpath.dirname(self.path) or ".")
        with tf.io.gfile.GFile(self.path + ".incomplete", "w") as stream:
            stream.write("".join(json.dumps(r) + "\n" for r in self.records))
        tf.io.gfile.rename(self.path + ".incomplete", self.path, overwrite=True)

    def close(self):
        for writer in self.writers.values():
            writer.flush()
        self.flush()

    def last(self, split):
        matching = [r for r in self.records if r["split"] == split]
        return matching[-1] if matching else None


def read(workdir):
    """The lines of the run's metrics.jsonl as dicts ([] before its first flush)."""
    path = join(workdir, "metrics.jsonl")
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as stream:
        return [json.loads(line) for line in stream if line.strip()]


def progress_bar(step, total, chief):
    """A tqdm bar (step, loss, img/s, ETA) on the chief; a silent stand-in elsewhere."""
    from tqdm import tqdm  # noqa: PLC0415

    return tqdm(total=total, initial=step, unit="step", dynamic_ncols=True, disable=not chief,
                mininterval=1.0)
