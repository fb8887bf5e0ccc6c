"""Seed 004: the CIFAR-10 U-Net classifying U and V into 20 bins each (cross-entropy)."""

from experiments import common
from experiments import cifar10_unet_regression


def get_config(arg=None):
    config = cifar10_unet_regression.cifar_config("cifar10_unet_classification", arg)
    config.loss.name = "binned_cross_entropy"
    config.model.kwargs.head = "classification"
    config.model.kwargs.num_bins = 20
    if arg == "tiny":
        config.model.kwargs.base_width = 8
    return common.apply_variant(config, arg)
