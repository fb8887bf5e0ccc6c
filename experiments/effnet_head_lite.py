"""effnet_head (seed 000) on EfficientNet-Lite0: real ImageNet weights offline, 8x faster."""

from experiments import common
from experiments import effnet_head


def get_config(arg=None):
    config = effnet_head.get_config(arg)
    config.experiment = "effnet_head_lite"
    config.model.kwargs.backbone = "efficientnet_lite0"
    if arg in (None, "cpu"):
        config.data.size = 128
        config.train.batch_size = 32
    return config if arg in (None, "cpu", "tiny") else common.apply_variant(config, arg)
