"""EfficientNet-B7 features + an upsampling head (seed 000), MSE or rarity-weighted MSE.

Switch the loss with `--config.loss.name=rarity_weighted_mse` (lambda: `--config.loss.lam`);
its prior comes from the records' manifest (ab histogram over the training split).
"""

from ml_collections import config_dict

from experiments import common


def get_config(arg=None):
    config = common.base("effnet_head", "effnet_head", arg)
    config.model.kwargs.backbone = "efficientnet_b7"
    config.model.kwargs.weights = "imagenet"
    config.train.batch_size = 32
    config.loss.name = "mse_ab"  # or "rarity_weighted_mse" (the paper's second objective)
    if arg == "tiny":
        config.model.kwargs.weights = config_dict.placeholder(str)  # random init, overridable
    return common.apply_variant(config, arg)
