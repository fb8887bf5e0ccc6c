"""What a config names, built: the model, its optimizer, and the bundle (model and metadata).

The loss is built by its own registry (koala.training.losses.build), the input pipeline by
koala.training.inputs.
"""

import keras
from absl import logging

from koala.bundle import keras_bundle
from koala.training import inputs
from koala.training import records as records_lib
from koala.training.config import ConfigError, weights_help


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


def bundle_model(model, config):
    """The model a bundle holds: one that takes the photo's L (and what it computes itself).

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
        raise ConfigError(weights_help(error)) from None
    lightness = keras.Input(model.inputs[names.index("L")].shape[1:], name="L")
    outputs = model({"L": lightness, "embedding": embedder(lightness)})
    return keras.Model({"L": lightness}, outputs, name=f"{model.name}_with_{name}")


def as_trained(model):
    """The inverse of bundle_model: the network as it trained, taking the precomputed
    embedding (records' embeddings may come from the photo at a larger size than the L the
    bundle's backbone would embed), or `model` itself when it wraps nothing."""
    for layer in model.layers:
        names = [tensor.name.split(":")[0] for tensor in getattr(layer, "inputs", None) or []]
        if "embedding" in names:
            return layer
    return model


def warm_start(model, source):
    """Copies the weights of bundle `source` (e.g. "default") into `model` before step 0.

    How a long schedule continues on a fresh machine where only the repository survives:
    the committed bundle gives the weights, the optimizer starts fresh. A bundle that wraps
    the trained model (the default's blend of two heads) is searched for a sub-model of the
    same name. Weights go layer by layer, by name: `model` may have layers the bundle lacks
    (a hint model's zero-initialised hint convolutions start as they were built), but every
    layer of the bundle must find its twin in `model`.
    """
    wrapper = keras_bundle.load(source).model
    inner = [layer for layer in wrapper.layers if layer.name == model.name]
    trained = inner[0] if inner else wrapper
    own = {layer.name: layer for layer in model.layers}
    missing = [layer.name for layer in trained.layers if layer.weights and (
        layer.name not in own or [w.shape for w in own[layer.name].weights]
        != [w.shape for w in layer.weights])]
    if missing:
        raise ConfigError(f"{source}: its layers {missing[:5]} are not in {model.name} (or "
                          f"differ in shape); "
                          f"config.model.init needs a bundle of the same architecture")
    # the wrapper may hold trained layers of `model` beside the sub-model (a hint model's
    # propagation applies after the blend)
    found = {layer.name: layer for layer in wrapper.layers if layer.name in own}
    found.update((layer.name, layer) for layer in trained.layers)
    for name, layer in found.items():
        if layer.weights:
            own[name].set_weights(layer.get_weights())
    new = [name for name, layer in own.items() if layer.weights and name not in found]
    logging.info("initialised %s from the bundle %s (%d layers as built: %s)", model.name,
                 source, len(new), ", ".join(new))


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
    """What colorize/export need besides the model: size, output kind, colour space, and how
    photos fit the working size as the input pipeline trained ("fit": koala.training.inputs).
    """
    meta = {"model": config.model.name, "config": config.model.kwargs.to_dict(),
            "size": int(config.data.size), "output": kind, "name": config.experiment,
            "color_space": config.data.color_space}
    fit = inputs.fit(config)
    if fit:
        meta["fit"] = fit
    return meta
