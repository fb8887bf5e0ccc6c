"""Zhang, Isola & Efros, ECCV 2016: ab-bin classification with class rebalancing.

Their settings: Adam (beta_2 0.99), lr 3e-5, weight decay 1e-3, batch 40, 176 px crops,
rebalanced cross-entropy with lambda 0.5 over the empirical prior of the training records.
"""

from experiments import common


def get_config(arg=None):
    config = common.base("zhang_eccv16", "zhang_eccv16", arg)
    config.data.size = 176
    config.loss.name = "rebalanced_cross_entropy"
    config.loss.lam = 0.5
    config.optimizer.update(learning_rate=3e-5, beta_2=0.99, weight_decay=1e-3)
    config.train.batch_size = 40
    if arg == "tiny":
        config.model.kwargs.width = 0.125
    return common.apply_variant(config, arg)
