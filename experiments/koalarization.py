"""Deep Koalarization (seed 001): Inception-ResNet-v2 embedding fused into an encoder-decoder.

Paper settings: Adam, lr 1e-3, batch 100, 224 px, MSE on ab in [-1, 1]. The embedding is
precomputed into the records (the frozen classifier runs once per image, not once per
step: 3.8 img/s here would otherwise bound training): `make records MODEL=koalarization`,
or `koala train` builds them on first use.

The embedding is Inception-ResNet-v2's 1000 ImageNet logits before the softmax
(keras.applications). The paper used TF-slim's checkpoint, whose classifier has 1001
outputs: index 0 is a "background" class and 1..1000 are the same ImageNet classes, so the
1000 logits here are the paper's minus the background score. Its dimension is read from the
records, never assumed. The backbone's weights: `--config.model.kwargs.weights` ("imagenet"
downloads them; offline pass the .h5 file, make WEIGHTS=FILE); the bundle carries the same
backbone in front of the model, so inference takes only the photo.
"""

from experiments import common


def get_config(arg=None):
    config = common.base("koalarization", "koalarization", arg)
    config.data.with_embedding = True
    config.data.embedding_backbone = "inception_resnet_v2"
    config.model.kwargs.embedding_source = "input"
    config.model.kwargs.weights = "imagenet"  # of the records' embedding backbone
    return common.apply_variant(config, arg)
