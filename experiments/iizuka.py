"""Iizuka, Simo-Serra & Ishikawa 2016: local and global features, fused; MSE on ab.

Their optimizer was Adadelta at batch 128 and 224 px; the classification branch needs scene
labels that Koala's records do not carry, so it is off (num_classes=0).
"""

from experiments import common


def get_config(arg=None):
    config = common.base("iizuka", "iizuka", arg)
    config.optimizer.update(name="adadelta", learning_rate=1.0)
    config.train.batch_size = 128
    config.model.kwargs.num_classes = 0
    if arg == "tiny":
        config.model.kwargs.update(width=0.125, global_size=32)
    return common.apply_variant(config, arg)
