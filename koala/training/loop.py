"""The training loop of every Koala experiment, on one CPU or a TPU pod alike.

Why a custom loop and not `model.fit()`: Keras 3 `fit()` fails under
MultiWorkerMirroredStrategy (keras-team/keras#20585). Here each replica computes its loss
summed over its examples and divided by the *global* batch, the optimizer all-reduces
(sums) the gradients, so every strategy takes the same step as one device on the whole
batch (tests/training/test_train.py checks default == Mirrored == two MWMS workers).

Fault tolerance: tf.train.CheckpointManager saves (step, model, optimizer) every
`checkpoint.every_steps` and at the end; the same command after a crash (even SIGKILL)
resumes from the newest checkpoint and stops at `train.steps`, with the weights of a run
that was never stopped: the records' data order is a function of the step
(koala.data.pipeline), so the resumed run reads the batches it would have read. A NaN/inf
loss stops the run with NonFiniteLoss before anything else is saved, so the last good
checkpoint survives.

Bundles take only {"L"}: a model trained on precomputed embeddings is saved with its
backbone in front (builders.bundle_model). Every path (records, workdir, checkpoints,
TensorBoard, bundle) may be a tf.io.gfile URL.

The loss (config.loss) and the input pipeline (config.data.pipeline) come from their
registries, koala.training.losses and koala.training.inputs.

Hooks for code that trains its own model: `train(config, workdir, model=..., loss_fn=...,
dataset_fn=...)`; `model` may be a function returning a keras.Model (built in the
strategy's scope) whose outputs may be a dict; `loss_fn(ab_true, outputs)` returns a
scalar, per-example or per-pixel loss (a losses.Loss with needs_inputs=True is called with
the model's inputs too, as the registry's entries declare).
"""

import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from koala.bundle import keras_bundle
from koala.models import outputs as outputs_lib
from koala.paths import join
from koala.training import builders, distribute, inputs, losses, validation
from koala.training.config import ConfigError
from koala.training.history import History, progress_bar


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or inf: training stopped, the last good checkpoint is kept."""


def train(config, workdir, model=None, loss_fn=None, dataset_fn=None, strategy=None):
    """Trains `config` in `workdir` (resuming if it holds checkpoints); returns a summary dict.

    Args:
      config: an experiment ConfigDict (experiments/common.py).
      workdir: checkpoints/, train/ and val/ (TensorBoard), metrics.jsonl, config.json,
        bundle/.
      model: None (the registry model of config.model), a keras.Model, or a function
        returning one (preferred under a strategy: it is called inside its scope).
      loss_fn: None (config.loss) or (ab_true, outputs) -> loss, or a losses.Loss.
      dataset_fn: None (config.data.pipeline) or (split, global_batch, input_context) ->
        tf.data of (features, target) batches (per-replica batches when input_context is given;
        "train" must repeat). Resuming is exact only for the records pipeline.
      strategy: a tf.distribute strategy; default: select_strategy("auto").
    Paths may be any tf.io.gfile URL (gs://, ram://) or local.
    """
    run = _Run(config, str(workdir), strategy or distribute.select_strategy("auto"), model,
               loss_fn, dataset_fn)
    return run.until_done()


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


class _Run:
    """One training run: its model and optimizer under the strategy, checkpoints, logs."""

    def __init__(self, config, workdir, strategy, model, loss_fn, dataset_fn):
        self.config, self.workdir, self.strategy = config, workdir, strategy
        self.policy = distribute.precision_policy(config.precision, strategy)
        keras.mixed_precision.set_dtype_policy(self.policy)
        keras.utils.set_random_seed(int(config.train.seed))
        if dataset_fn is None:
            inputs.prepare(config)  # e.g. records built on first use, before the model
        self.chief = distribute.is_chief(strategy)
        self.own_dir = distribute.worker_dir(workdir, strategy)
        self.global_batch = int(config.train.batch_size)
        self.kind = builders.output_kind(config)
        logging.info("%s: %d replica(s), %s, global batch %d, %s output",
                     type(strategy).__name__, strategy.num_replicas_in_sync, self.policy,
                     self.global_batch, self.kind)
        with strategy.scope():
            if model is None:
                model = builders.build_model(config)
            elif not isinstance(model, keras.Model):
                model = model()
            self.optimizer = builders.build_optimizer(config, self.policy)
            self.optimizer.build(model.trainable_variables)
            self.step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.model = model
        self.loss = losses.as_loss(loss_fn) if loss_fn else losses.build(config)
        self.step = self._restore_or_start()
        self.dataset_fn = dataset_fn or inputs.dataset_fn(config, start_step=self.step)

    def _restore_or_start(self):
        """The step to start at: the chief's newest checkpoint, else config.model.init."""
        self.checkpoint = tf.train.Checkpoint(step=self.step_var, model=self.model,
                                              optimizer=self.optimizer)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, join(self.own_dir, "checkpoints"),
            max_to_keep=int(self.config.checkpoint.keep))
        latest = tf.train.latest_checkpoint(join(self.workdir, "checkpoints"))
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            logging.info("resumed from %s at step %d", latest, int(self.step_var))
        elif self.config.model.get("init"):
            builders.warm_start(self.model, self.config.model.init)
        return int(self.step_var.numpy())

    def _step_fn(self, features, target):
        with tf.GradientTape() as tape:
            outputs = _float32(self.model(features, training=True))
            per_replica = per_example(self.loss(target, outputs, features),
                                      tf.shape(target)[0])
            loss = tf.nn.compute_average_loss(per_replica, global_batch_size=self.global_batch)
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, self.model.trainable_variables)
        self.optimizer.apply(grads, self.model.trainable_variables)
        return loss

    def _train_steps_fn(self):
        """A tf.function running `count` steps on the iterator; returns their mean loss."""
        step_fn = self._step_fn
        if self.config.train.jit_compile:
            step_fn = tf.function(step_fn, jit_compile=True)
        strategy = self.strategy

        @tf.function
        def train_steps(iterator, count):
            total_loss = tf.constant(0.0)
            for _ in tf.range(count):
                features, target = next(iterator)
                loss = strategy.reduce("SUM", strategy.run(step_fn, args=(features, target)),
                                       None)
                total_loss += loss
            return total_loss / tf.cast(count, tf.float32)

        return train_steps

    def _eval_step_fn(self):
        size, strategy = int(self.config.data.size), self.strategy

        def eval_fn(features, target):
            outputs = _float32(self.model(features, training=False))
            per_image = per_example(self.loss(target, outputs, features), tf.shape(target)[0])
            return (tf.reduce_sum(per_image), tf.cast(tf.size(per_image), tf.float32),
                    features["L"], target, outputs_lib.to_target(outputs, self.kind, size))

        @tf.function
        def eval_step(features, target):
            loss_sum, count, *images = strategy.run(eval_fn, args=(features, target))
            reduce = lambda t: strategy.reduce("SUM", t, None)  # noqa: E731
            return reduce(loss_sum), reduce(count), [strategy.gather(t, axis=0) for t in images]

        return eval_step

    def evaluate(self, eval_step):
        """(metrics of the val batches, TensorBoard image grid)."""
        config = self.config
        dataset = self.dataset_fn("val", self.global_batch, None).take(
            int(config.eval.max_batches))
        loss_sum = count = 0.0
        kept = []
        for features, target in self.strategy.experimental_distribute_dataset(dataset):
            batch_loss, batch_count, images = eval_step(features, target)
            loss_sum, count = loss_sum + float(batch_loss), count + float(batch_count)
            kept.append([t.numpy() for t in images])
        if not kept:
            raise ConfigError("the val split is empty: records need val-*.tfrecord shards")
        gray, truth, prediction = (np.concatenate(parts) for parts in zip(*kept))
        result = {"loss": loss_sum / count}
        result.update(validation.quality_metrics(gray, truth, prediction,
                                                 config.data.color_space))
        shown = int(config.eval.images)
        grid = validation.tensorboard_grid(gray[:shown], truth[:shown], prediction[:shown],
                                     config.data.color_space)
        return result, grid

    def until_done(self):
        """Trains to train.steps with checkpoints and evaluations; saves the bundle."""
        config, total = self.config, int(self.config.train.steps)
        train_steps, eval_step = self._train_steps_fn(), self._eval_step_fn()
        iterator = iter(self.strategy.distribute_datasets_from_function(
            lambda context: self.dataset_fn("train", self.global_batch, context)))
        history = History(self.workdir, self.chief, self.step)
        if self.chief:  # what the run trained with, beside its metrics (as big_vision keeps it)
            with tf.io.gfile.GFile(join(self.workdir, "config.json"), "w") as stream:
                stream.write(config.to_json_best_effort(indent=2, sort_keys=True))
        bar = progress_bar(self.step, total, self.chief)
        loss = float("nan")
        while self.step < total:
            count = _steps_until_event(self.step, total, config)
            started = time.perf_counter()
            loss = float(train_steps(iterator, tf.constant(count)))
            if not np.isfinite(loss):
                bar.close()
                raise NonFiniteLoss(
                    f"the training loss became {loss} between steps {self.step} and "
                    f"{self.step + count}; stopped without saving. Last good checkpoint: "
                    f"{tf.train.latest_checkpoint(join(self.workdir, 'checkpoints'))} "
                    f"(rerunning resumes there; lower optimizer.learning_rate or check the data)")
            self.step += count
            images_per_s = self.global_batch * count / (time.perf_counter() - started)
            bar.update(count)
            bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{images_per_s:.1f}")
            history.train(self.step, loss, images_per_s,
                          float(tf.convert_to_tensor(self.optimizer.learning_rate)))
            self._events(history, eval_step, total)
        bar.close()
        history.close()
        self._save_bundle()
        return {"step": self.step, "train_loss": loss, "val": history.last("val"),
                "workdir": self.workdir}

    def _events(self, history, eval_step, total):
        """The checkpoint and the evaluation due at this step, if any."""
        step, config = self.step, self.config
        if step % int(config.checkpoint.every_steps) == 0 or step == total:
            self.step_var.assign(step)
            history.flush()  # first: a kill between the two leaves a log that the resumed
            self.manager.save(checkpoint_number=step)  # run truncates, never a lost one
        if step % int(config.eval.every_steps) == 0 or step == total:
            result, grid = self.evaluate(eval_step)
            logging.info("step %d val %s", step, result)
            history.val(step, result, grid)

    def _save_bundle(self):
        keras_bundle.save(join(self.own_dir, "bundle"),
                          builders.bundle_model(self.model, self.config),
                          builders.bundle_meta(self.config, self.kind))
        if not self.chief and tf.io.gfile.exists(join(self.own_dir, "checkpoints")):
            tf.io.gfile.rmtree(join(self.own_dir, "checkpoints"))  # it only mirrored the chief's


def _steps_until_event(step, total, config):
    """Steps to run in one tf.function call: up to steps_per_loop, stopping at events."""
    every = [int(config.checkpoint.every_steps), int(config.eval.every_steps)]
    next_event = min([total] + [(step // e + 1) * e for e in every if e > 0])
    return max(1, min(int(config.train.steps_per_loop), next_event - step))
