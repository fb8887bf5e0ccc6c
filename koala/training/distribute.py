"""tf.distribute strategy and mixed-precision policy, chosen from the hardware or by name."""

import json
import os

import tensorflow as tf
from absl import logging

from koala.paths import join
from koala.training.config import ConfigError

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multiworker", "tpu")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


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


def worker_dir(workdir, strategy):
    """The chief writes into workdir; other workers into workdir/worker-N (same collectives)."""
    if is_chief(strategy):
        return workdir
    return join(workdir, f"worker-{strategy.cluster_resolver.task_id}")


def precision_policy(name, strategy):
    """"auto" -> bfloat16 on TPU, float16 (+ loss scaling) on GPU, float32 on CPU."""
    if name not in PRECISIONS:
        raise ConfigError(f"unknown precision {name!r}; choose one of {PRECISIONS}")
    if name != "auto":
        return name
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "mixed_bfloat16"
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"

