"""Deep Koalarization (seed 001): Inception-ResNet-v2 embedding fused into an encoder-decoder.

Paper settings: Adam, lr 1e-3, batch 100, 224 px, MSE on ab in [-1, 1]. The embedding is
precomputed by `koala records --embedding inception_resnet_v2` (the frozen classifier runs
once per image, not once per step: 3.8 img/s here would otherwise bound training).
"""

from experiments import common


def get_config(arg=None):
    config = common.base("koalarization", "koalarization", arg)
    config.data.with_embedding = True
    config.data.embedding_backbone = "inception_resnet_v2"
    config.data.records = "records/koalarization"
    config.model.kwargs.embedding_source = "input"
    config.model.kwargs.embedding_dim = 1536  # pooled IRv2 features, as `koala records --embedding` stores them
    return common.apply_variant(config, arg)
