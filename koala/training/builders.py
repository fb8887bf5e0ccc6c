"""What a config names, built: the model, its loss, its optimizer, and the bundle's metadata."""

import keras
import tensorflow as tf
from absl import logging

from koala import bundle, color
from koala.data import photo_crops
from koala.training import losses
from koala.training import records as records_lib
from koala.training.config import ConfigError


def output_kind(config):
    """"regression", "classification" or "binned", as the registry reports the model."""
    if config.model.get("output_kind"):
        return config.model.output_kind
    import koala.models

    return koala.models.describe(config.model.name, **config.model.kwargs.to_dict())["output"]


def build_model(config):
    import koala.models

    return koala.models.build(config.model.name, input_size=int(config.data.size),
                              **config.model.kwargs.to_dict())


def inference_model(model, config):
    """The model a bundle holds: one that takes only {"L"}.

    A model trained on precomputed embeddings gets the backbone that computed them (the
    records' manifest names it and its weights) in front of its "embedding" input, so
    colorize, evaluate, export and study feed it the photo alone, as any other bundle.
    """
    names = [tensor.name.split(":")[0] for tensor in model.inputs]
    if "embedding" not in names:
        return model
    from koala.models import backbones

    settings = records_lib.manifest(config.data.records).get("settings", {})
    name = settings.get("embedding") or config.data.embedding_backbone
    weights = settings.get("embedding_weights", "imagenet")
    try:
        embedder = backbones.embedding(name, weights=weights, from_l=True)
    except backbones.WeightsUnavailableError as error:
        raise ConfigError(records_lib.weights_help(error)) from None
    lightness = keras.Input(model.inputs[names.index("L")].shape[1:], name="L")
    outputs = model({"L": lightness, "embedding": embedder(lightness)})
    return keras.Model({"L": lightness}, outputs, name=f"{model.name}_with_{name}")


def warm_start(model, source):
    """Copies the weights of bundle `source` (e.g. "default") into `model` before step 0.

    How a long schedule continues on a fresh machine where only the repository survives:
    the committed bundle gives the weights, the optimizer starts fresh. A bundle that wraps
    the trained model (the default's blend of two heads) is searched for a sub-model of the
    same name. Weights go layer by layer, by name: `model` may have layers the bundle lacks
    (a hint model's zero-initialised hint convolutions start as they were built), but every
    layer of the bundle must find its twin in `model`.
    """
    trained = bundle.load(source).model
    inner = [layer for layer in trained.layers if layer.name == model.name]
    trained = inner[0] if inner else trained
    own = {layer.name: layer for layer in model.layers}
    missing = [layer.name for layer in trained.layers
               if layer.weights and layer.name not in own]
    if missing:
        raise ConfigError(f"{source}: its layers {missing[:5]} are not in {model.name}; "
                          f"config.model.init needs a bundle of the same architecture")
    for layer in trained.layers:
        if layer.weights:
            own[layer.name].set_weights(layer.get_weights())
    new = [name for name, layer in own.items()
           if layer.weights and name not in {l.name for l in trained.layers}]
    logging.info("initialised %s from the bundle %s (%d layers as built: %s)", model.name,
                 source, len(new), ", ".join(new))


def _prior_loss(make):
    return lambda config: make(records_lib.ab_prior(config.data.records), float(config.loss.lam))


def _huber_bins(config):
    """The default model's loss; with loss.rebalance its bin cross-entropy is rebalanced by
    the ab prior of the training photos (loss.lam as Zhang's lambda)."""
    weight_of = None
    if config.loss.get("rebalance", False):
        prior = photo_crops.ab_prior(config.data.train_photos)
        weight_of = losses.bin_weight_lookup(
            color.rebalancing_weights(prior, float(config.loss.lam)))
    logit_weight = float(config.loss.get("logit_weight", 1.0))
    feature_weight = float(config.loss.get("feature_weight", 0.0))
    if not feature_weight:
        return lambda y_true, outputs: losses.huber_bins(y_true, outputs, logit_weight,
                                                         bin_weight_of=weight_of)
    extract = frozen_features(config.model.kwargs.backbone,
                               config.model.kwargs.get("weights") or "imagenet")

    def loss(y_true, outputs, inputs):
        base = losses.huber_bins(y_true, outputs, logit_weight, bin_weight_of=weight_of)
        distance = losses.feature_distance(extract, inputs["L"], y_true, outputs["ab"])
        return base + feature_weight * tf.reduce_mean(distance)

    loss.needs_inputs = True
    return loss


def frozen_features(name, weights):
    """sRGB [0, 1] -> the backbone's feature maps at strides 8, 16 and 32 (a second, frozen
    copy: the model's own encoder trains some stages), for losses.feature_distance."""
    from koala.models import backbones

    try:
        encoder, names, _ = backbones.backbone(name, (None, None), weights=weights)
    except backbones.WeightsUnavailableError as error:
        raise ConfigError(str(error)) from None
    encoder.trainable = False
    scale = backbones.rgb_input(name)
    return lambda rgb: [encoder(scale(rgb), training=False)[n] for n in names[2:]]


# config.loss.name -> config -> loss(ab_true, outputs)
LOSSES = {
    "mse_ab": lambda config: losses.mse_ab,
    "binned_cross_entropy": lambda config: losses.binned_cross_entropy,
    "rarity_weighted_mse": _prior_loss(losses.rarity_weighted_mse),
    "rebalanced_cross_entropy": _prior_loss(losses.rebalanced_cross_entropy),
    "huber_bins": lambda config: _huber_bins(config),
}


def build_loss(config):
    """The loss named by config.loss, with the ab prior of the records when it needs one."""
    if config.loss.name not in LOSSES:
        raise ConfigError(f"unknown loss {config.loss.name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[config.loss.name](config)


# config.optimizer.name -> (optimizer settings, keyword arguments shared by all) -> optimizer
OPTIMIZERS = {
    "adam": lambda opt, common: keras.optimizers.Adam(
        beta_1=opt.beta_1, beta_2=opt.beta_2, weight_decay=float(opt.weight_decay) or None,
        **common),
    "adamw": lambda opt, common: keras.optimizers.AdamW(
        beta_1=opt.beta_1, beta_2=opt.beta_2, weight_decay=float(opt.weight_decay), **common),
    "sgd": lambda opt, common: keras.optimizers.SGD(momentum=0.9, **common),
    "adadelta": lambda opt, common: keras.optimizers.Adadelta(**common),
}


def learning_rate(config):
    """The configured rate, constant or cosine-decayed over train.steps after a warmup."""
    rate, sched = float(config.optimizer.learning_rate), config.schedule
    if sched.name == "constant":
        return rate
    if sched.name != "cosine":
        raise ConfigError(f"unknown schedule {sched.name!r} (constant or cosine)")
    return keras.optimizers.schedules.CosineDecay(
        0.0 if sched.warmup_steps else rate, int(config.train.steps),
        warmup_target=rate if sched.warmup_steps else None,
        warmup_steps=int(sched.warmup_steps))


def build_optimizer(config, policy):
    """The configured optimizer and schedule; loss scaling for float16."""
    opt = config.optimizer
    if opt.name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {opt.name!r}; choose one of {sorted(OPTIMIZERS)}")
    common = dict(learning_rate=learning_rate(config), clipnorm=float(opt.clipnorm) or None)
    optimizer = OPTIMIZERS[opt.name](opt, common)
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def bundle_meta(config, kind):
    """What colorize/export need besides the model: size, output kind, colour space, fit.

    Records written with resize "pad" (the writer's default, Deep Koalarization's) train on
    white-padded squares, so inference pads the same way ("fit": "pad").
    """
    meta = {"model": config.model.name, "config": config.model.kwargs.to_dict(),
            "size": int(config.data.size), "output": kind, "name": config.experiment,
            "color_space": config.data.color_space}
    if config.data.get("pipeline", "records") == "records" and config.data.records:
        resize = records_lib.manifest(config.data.records).get("settings", {}).get("resize")
        if resize:
            meta["fit"] = "pad" if resize == "pad" else "aspect"
    return meta
