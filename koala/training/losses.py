"""The papers' losses, and the one registry that builds them from an experiment's config.

Each loss is a callable loss(y_true, y_pred) -> scalar for a custom loop. y_true is always
ab scaled to [-1, 1] at full resolution, [B, H, W, 2], as the input pipelines yield it;
y_pred is what the model outputs. Per-image sums are normalised per pixel and averaged over
the batch, so values do not depend on image size or batch size (the losses stay comparable
across working sizes and replicas). Under a tf.distribute strategy the caller divides by the
number of replicas as usual.

A loss is selected by config.loss.name. Each name is registered by one decorated function
beside the loss's formula, which builds the loss from the whole experiment config:

    @register("rebalanced_cross_entropy", paper_loss_for="classification")
    def _rebalanced_cross_entropy_of(config, prior):
        return rebalanced_cross_entropy(prior(), float(config.loss.lam))

`prior()` gives Zhang's smoothed p(ab bin) of the experiment's training data (records or
photo folder: koala.training.inputs.ab_prior, koala.data.prior), read only by the losses that
call it; the losses themselves never read files. A loss that needs the model's inputs as
well says so in its entry (`needs_inputs=True`: it is called loss(y_true, outputs, inputs)).
`build(config)` is the one selector; the loop calls every loss as a `Loss`.
"""

import dataclasses
import functools
from typing import Callable, Optional

import ml_collections
import numpy as np
import tensorflow as tf

from koala import color
from koala.models import unet
from koala.training import inputs as inputs_lib
from koala.training.config import ConfigError
from koala.training.registry import Registry


@dataclasses.dataclass(frozen=True)
class Loss:
    """A built loss, called loss(y_true, outputs, inputs) whatever it reads: `fn(y_true,
    outputs)`, or `fn(y_true, outputs, inputs)` when it `needs_inputs` (inputs: the dict
    the model was called on)."""

    fn: Callable
    needs_inputs: bool = False

    def __call__(self, y_true, outputs, inputs=None):
        if self.needs_inputs:
            return self.fn(y_true, outputs, inputs)
        return self.fn(y_true, outputs)


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered loss: how it is built and what it declares (see `register`)."""

    make: Callable
    needs_inputs: bool
    paper_loss_for: Optional[str]


_LOSSES = Registry("loss")


def register(name, *, needs_inputs=False, paper_loss_for=None):
    """Decorator registering `make(config, prior) -> loss function` as config.loss.name `name`.

    make: reads what it needs from the experiment config (config.loss.lam, ...); `prior()`
      returns the smoothed ab prior of the training data (read on the first call only).
    needs_inputs: the loss function takes (y_true, outputs, inputs), `inputs` being the
      features the model was called on ({"L"} and any other input); the loop passes them.
    paper_loss_for: the model output kind ("regression", "classification", "binned") that
      its paper trains with this loss, for `for_output`.
    """
    return _LOSSES.decorator(name, lambda make: Entry(make, needs_inputs, paper_loss_for))


def names():
    """Registered loss names, sorted."""
    return _LOSSES.names()


def entry(name):
    """The Entry of loss `name`: its builder and what it declares."""
    return _LOSSES.get(name)


def build(config, prior=None):
    """The loss named by config.loss.name, built from `config`, as a Loss.

    prior: the ab prior for a loss that weighs by one; None reads the training data's
    (koala.training.inputs.ab_prior), once, and only when the loss asks for it.
    """
    registered = entry(config.loss.name)

    @functools.cache
    def training_prior():
        return inputs_lib.ab_prior(config) if prior is None else prior

    return Loss(registered.make(config, training_prior), registered.needs_inputs)


def as_loss(loss_fn):
    """A Loss as it is; a plain loss_fn(y_true, outputs) as a Loss without inputs."""
    return loss_fn if isinstance(loss_fn, Loss) else Loss(loss_fn)


def for_output(kind, prior=None, lam=0.5):
    """The paper's loss for a model's output kind (koala.models.describe(...)["output"]): the
    entry registered with paper_loss_for=kind. "regression" -> mse_ab; "classification" ->
    rebalanced_cross_entropy(prior) (a uniform prior, i.e. no rebalancing, when none is
    given); "binned" -> binned_cross_entropy."""
    for name, registered in _LOSSES.items():
        if registered.paper_loss_for == kind:
            config = ml_collections.ConfigDict({"loss": {"name": name, "lam": lam}})
            uniform = np.full(len(color.ab_bins()), 1.0 / len(color.ab_bins()))
            return build(config, uniform if prior is None else prior)
    raise ValueError(f"unknown output kind {kind!r}")


# --------------------------------------------------------------------------- the losses

def mse_ab(y_true, y_pred):
    """Seed 001 eq. (2): 1/(2HW) sum over a, b and pixels of squared error, batch mean.

    1/(2HW) times the sum over the 2HW values is the mean over them; so this is the mean
    squared error over every value, written out to show the normalisation is the paper's.
    """
    y_true = tf.convert_to_tensor(y_true, tf.float32)
    squared = tf.square(y_true - tf.cast(y_pred, tf.float32))
    per_image = tf.reduce_sum(squared, axis=[1, 2, 3]) / tf.cast(
        2 * tf.shape(y_true)[1] * tf.shape(y_true)[2], tf.float32)
    return tf.reduce_mean(per_image)


@register("mse_ab", paper_loss_for="regression")
def _mse_ab_of(config, prior):
    return mse_ab


def rarity_weights(prior, lam=0.5):
    """Seed 000's v(a, b) ∝ 1 / ((1 - λ) p~ + λ / Q) with E_p~[v] = 1: Zhang's rebalancing.

    (The seed writes λ ÷ 4; Zhang's λ / Q over the Q bins is the normalisation it cites.)
    """
    return color.rebalancing_weights(prior, lam)


def bin_weight_lookup(weights):
    """A function ab [..., 2] (Lab units) -> weights[bin of ab] by a table over the ab grid.

    color.nearest_bin compares every pixel with all Q centres ([..., Q, 2] floats: ~0.8 GB
    for a batch of 8 at 224 px); the centres lie on a regular grid, so rounding to the grid
    and one table lookup give the same bin for colours inside the gamut cells. Colours in
    cells outside the list go to the centre nearest that cell, as color.histogram_counts
    (the prior) assigns them, so weights and prior agree on every pixel.
    """
    bins = color.ab_bins()
    side = 2 * color.AB_RANGE // color.GRID_SIZE + 1
    axis = np.arange(-color.AB_RANGE, color.AB_RANGE + 1, color.GRID_SIZE, dtype=np.float32)
    cells = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    nearest = np.argmin(((cells[:, None] - bins[None]) ** 2).sum(-1), axis=1)
    table = tf.constant(np.asarray(weights, np.float32)[nearest].reshape(side, side))

    def lookup(ab):
        index = tf.clip_by_value(tf.cast(tf.round((ab + color.AB_RANGE) / color.GRID_SIZE),
                                         tf.int32), 0, side - 1)
        return tf.gather_nd(table, index)

    return lookup


def rarity_weighted_mse(prior, lam=0.5):
    """Seed 000: MSE with each pixel weighted by v of the nearest bin of its TRUE ab.

    Rare (saturated) colours weigh more, which counters the desaturation of plain MSE.
    """
    weight_of = bin_weight_lookup(rarity_weights(prior, lam))

    def loss(y_true, y_pred):
        y_true = tf.convert_to_tensor(y_true, tf.float32)
        pixel_weight = weight_of(color.unscale_ab(y_true))
        squared = tf.reduce_sum(tf.square(y_true - tf.cast(y_pred, tf.float32)), axis=-1)
        return tf.reduce_mean(tf.reduce_mean(pixel_weight * squared, axis=[1, 2]) / 2.0)

    return loss


@register("rarity_weighted_mse")
def _rarity_weighted_mse_of(config, prior):
    return rarity_weighted_mse(prior(), float(config.loss.lam))


def rebalanced_cross_entropy(prior, lam=0.5, neighbours=5, sigma=5.0):
    """Zhang et al. eq. 2-4: soft-encoded multinomial cross-entropy with class rebalancing.

    The target ab is subsampled (nearest) to the logits' resolution (1/4 for zhang_eccv16),
    soft-encoded over its 5 nearest bins (Gaussian, sigma 5), and each pixel's term is
    weighted by w of its nearest bin (w ∝ 1/((1-λ) p~ + λ/Q), E[w] = 1). Mean over pixels
    and images (Zhang sums over pixels: a constant factor).
    """
    weight_of = bin_weight_lookup(color.rebalancing_weights(prior, lam))

    def loss(y_true, logits):
        logits = tf.cast(logits, tf.float32)
        y_true = tf.image.resize(tf.convert_to_tensor(y_true, tf.float32),
                                 tf.shape(logits)[1:3], method="nearest")
        ab = color.unscale_ab(y_true)
        target = color.soft_encode(ab, neighbours=neighbours, sigma=sigma)
        pixel_weight = weight_of(ab)
        cross_entropy = -tf.reduce_sum(target * tf.nn.log_softmax(logits, axis=-1), axis=-1)
        return tf.reduce_mean(pixel_weight * cross_entropy)

    return loss


@register("rebalanced_cross_entropy", paper_loss_for="classification")
def _rebalanced_cross_entropy_of(config, prior):
    return rebalanced_cross_entropy(prior(), float(config.loss.lam))


def binned_cross_entropy(y_true, logits, value_range=unet.VALUE_RANGE):
    """Seed 004 eq. (1): 1/N sum over pixels of CE(U) + CE(V), each channel over its bins.

    logits [B, H, W, 2, bins] as the unet classification head gives; the true value of
    each channel is one-hot in its equal-width bin over `value_range`.
    """
    logits = tf.cast(logits, tf.float32)
    labels = unet.to_bins(y_true, logits.shape[-1], value_range)
    per_channel = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return tf.reduce_mean(tf.reduce_sum(per_channel, axis=-1))


@register("binned_cross_entropy", paper_loss_for="binned")
def _binned_cross_entropy_of(config, prior):
    return binned_cross_entropy


def huber_bins(y_true, outputs, logit_weight=1.0, delta=10.0, bin_weight_of=None):
    """The default model's loss: Huber on ab (Lab units) + soft-encoded bin cross-entropy.

    `outputs` is the two-head dict of koala.models.effnet_unet ("ab" regression in [-1, 1],
    "ab_logits" over color.ab_bins() at a lower resolution). Huber (delta 10 Lab units,
    divided by 100 to sit near the cross-entropy's scale) keeps the regression head from
    chasing outliers; the bin head learns the multimodal distribution that the prior
    correction and the vividness control later reweight. The target ab is average-pooled
    to the logits' resolution before soft-encoding (5 nearest bins, sigma 5).
    bin_weight_of (bin_weight_lookup of Zhang's rebalancing weights) weighs each pixel of
    the cross-entropy by the rarity of its colour: class rebalancing in training.
    """
    y_true = tf.convert_to_tensor(y_true, tf.float32)
    error = color.unscale_ab(tf.cast(outputs["ab"], tf.float32) - y_true)
    regression = tf.reduce_mean(tf.keras.losses.huber(tf.zeros_like(error), error,
                                                      delta=delta)) / 100.0
    logits = tf.cast(outputs["ab_logits"], tf.float32)
    stride = y_true.shape[1] // logits.shape[1]
    ab_low = tf.nn.avg_pool2d(color.unscale_ab(y_true), stride, stride, "VALID")
    per_pixel = -tf.reduce_sum(color.soft_encode(ab_low) * tf.nn.log_softmax(logits), -1)
    if bin_weight_of is not None:
        per_pixel = bin_weight_of(ab_low) * per_pixel
    return regression + logit_weight * tf.reduce_mean(per_pixel)


@register("huber_bins", needs_inputs=True)
def _huber_bins_of(config, prior):
    """The default model's loss, from config.loss: logit_weight (of the bin term); rebalance
    (the bin cross-entropy weighed by Zhang's rebalancing weights of the training data's
    prior, loss.lam as lambda); feature_weight (plus that times feature_distance through a
    second, frozen copy of the model's backbone: it rebuilds the photos from the input L,
    hence needs_inputs)."""
    weight_of = None
    if config.loss.get("rebalance", False):
        weight_of = bin_weight_lookup(color.rebalancing_weights(prior(), float(config.loss.lam)))
    logit_weight = float(config.loss.get("logit_weight", 1.0))
    feature_weight = float(config.loss.get("feature_weight", 0.0))
    extract = frozen_features(config.model.kwargs.backbone,
                              config.model.kwargs.get("weights") or "imagenet") \
        if feature_weight else None

    def loss(y_true, outputs, inputs):
        base = huber_bins(y_true, outputs, logit_weight, bin_weight_of=weight_of)
        if extract is None:
            return base
        distance = feature_distance(extract, inputs["L"], y_true, outputs["ab"])
        return base + feature_weight * tf.reduce_mean(distance)

    return loss


def feature_distance(extract, lightness, ab_true, ab_pred):
    """Perceptual distance of the predicted and true photos through a frozen backbone.

    Both photos are rebuilt from the same L (scaled [-1, 1], [B, H, W, 1]) and their ab
    (scaled); `extract` maps sRGB in [0, 1] to a list of feature maps. As in LPIPS, each
    feature vector is unit-normalised over its channels and the squared differences are
    averaged over positions and summed over maps. Why: per-pixel losses reward the grayish
    mean of plausible colours; features of an ImageNet classifier move when an object's
    colour is missing or wrong (the judge of semantic interpretability sees the same).
    Gradients flow into ab_pred only. Per example, [B].
    """
    def photo(ab):
        lab = tf.concat([color.unscale_l(lightness), color.unscale_ab(ab)], axis=-1)
        return color.lab_to_rgb(lab)

    def unit(feature):
        return feature * tf.math.rsqrt(tf.reduce_sum(tf.square(feature), -1, keepdims=True)
                                       + 1e-10)

    truth = [tf.stop_gradient(unit(f)) for f in extract(photo(tf.cast(ab_true, tf.float32)))]
    predicted = [unit(f) for f in extract(photo(tf.cast(ab_pred, tf.float32)))]
    return tf.add_n([tf.reduce_mean(tf.reduce_sum(tf.square(p - t), -1), axis=[1, 2])
                     for p, t in zip(predicted, truth)])


def frozen_features(name, weights):
    """sRGB [0, 1] -> the backbone's feature maps at strides 8, 16 and 32 (a second, frozen
    copy: the model's own encoder trains some stages), for feature_distance."""
    from koala.models import backbones

    try:
        encoder, maps, _ = backbones.backbone(name, (None, None), weights=weights)
    except backbones.WeightsUnavailableError as error:
        raise ConfigError(str(error)) from None
    encoder.trainable = False
    scale = backbones.rgb_input(name)
    return lambda rgb: [encoder(scale(rgb), training=False)[n] for n in maps[2:]]
