"""Seed 004: a U-Net on CIFAR-10 in YUV, regressing UV (MSE).

The paper splits CIFAR-10 50k/5k/5k: `data.source="tfds:cifar10"` builds those records when
tfds has the data; here the ../shared/data/cifar10 folder (10k train, 2k test) stands in.
"""

from experiments import common

CIFAR_FOLDER = "../shared/data/cifar10"


def cifar_config(name, arg):
    """The seed-004 defaults shared by the regression and classification experiments."""
    config = common.base(name, "unet", arg)
    config.data.source = CIFAR_FOLDER
    config.data.size = 32
    config.data.color_space = "yuv"
    config.train.batch_size = 64
    config.train.steps = 20_000
    config.eval.every_steps = config.checkpoint.every_steps = 500
    if arg in ("tpu", "gpu"):
        config.data.source = "tfds:cifar10"
        if arg == "tpu":
            config.data.records = "gs://koala-records/cifar10"
    return config


def get_config(arg=None):
    config = cifar_config("cifar10_unet_regression", arg)
    config.loss.name = "mse_ab"
    config.model.kwargs.head = "regression"
    if arg == "tiny":
        config.model.kwargs.base_width = 8
    return common.apply_variant(config, arg)
