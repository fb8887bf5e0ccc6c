"""The papers' losses equal their formulas on tiny tensors; weights have expectation 1."""

import math

import cv2
import numpy as np
import pytest

from koala import color
from koala.training import losses

Q = len(color.ab_bins())


@pytest.fixture(scope="module")
def photo_prior(sample_photos):
    """The smoothed ab prior of a few real photos, as the records manifest would give it."""
    ab = []
    for path in sample_photos(8):
        rgb = cv2.imread(str(path))[..., ::-1]
        ab.append(color.rgb_to_lab_cv2(rgb)[..., 1:].reshape(-1, 2))
    return color.smoothed_prior(color.histogram_counts(np.concatenate(ab)))


def skewed_prior():
    """Half the mass on the grey bin (a = b = 0), the rest spread evenly."""
    prior = np.full(Q, 0.5 / (Q - 1))
    prior[grey_bin()] = 0.5
    return prior


def grey_bin():
    return int(np.argmin(np.abs(color.ab_bins()).sum(-1)))


@pytest.mark.parametrize("lam", [0.5, 0.2, 1.0])
def test_rarity_weights_have_expectation_one_under_the_prior(photo_prior, lam):
    weights = losses.rarity_weights(photo_prior, lam)
    assert weights.shape == (Q,)
    assert float(np.sum(photo_prior * weights)) == pytest.approx(1.0, abs=1e-5)


def test_rebalancing_weights_have_expectation_one_and_favour_rare_colours(photo_prior):
    weights = color.rebalancing_weights(photo_prior, 0.5)
    assert float(np.sum(photo_prior * weights)) == pytest.approx(1.0, abs=1e-5)
    saturated = int(np.argmax(np.abs(color.ab_bins()).sum(-1)))
    assert weights[saturated] > weights[grey_bin()]


def test_mse_ab_is_eq_2_of_seed_001():
    y_true = np.zeros((2, 1, 2, 2), np.float32)
    y_pred = np.zeros((2, 1, 2, 2), np.float32)
    y_pred[0, 0, 0] = [0.5, -0.5]
    y_pred[0, 0, 1] = [0.1, 0.0]
    # image 0: (0.25 + 0.25 + 0.01 + 0) / (2 * 1 * 2) = 0.1275; image 1: 0; batch mean.
    assert float(losses.mse_ab(y_true, y_pred)) == pytest.approx(0.1275 / 2)


def test_rarity_weighted_mse_weights_each_pixel_by_its_true_colour():
    prior = skewed_prior()
    lam = 0.5
    v = 1.0 / ((1 - lam) * prior + lam / Q)
    v = v / np.sum(prior * v)  # E_p[v] = 1
    rare = (grey_bin() + 40) % Q
    y_true = np.zeros((1, 1, 2, 2), np.float32)  # pixel 0 grey, pixel 1 a rare bin centre
    y_true[0, 0, 1] = color.ab_bins()[rare] / 128.0
    y_pred = y_true + np.array([0.1, 0.2], np.float32)  # squared error 0.05 at each pixel
    expected = (v[grey_bin()] * 0.05 + v[rare] * 0.05) / (2 * 1 * 2)
    loss = losses.rarity_weighted_mse(prior, lam)(y_true, y_pred)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert v[rare] > 1.0 > v[grey_bin()]


def test_rebalanced_cross_entropy_hand_values():
    prior = skewed_prior()
    weights = color.rebalancing_weights(prior, 0.5)
    rare = (grey_bin() + 40) % Q
    y_true = np.broadcast_to(color.ab_bins()[rare] / 128.0, (1, 4, 4, 2)).astype(np.float32)
    loss = losses.rebalanced_cross_entropy(prior)
    # Uniform logits: the cross-entropy of any target distribution is log Q.
    uniform = np.zeros((1, 1, 1, Q), np.float32)  # 1/4 resolution: the target is subsampled
    assert float(loss(y_true, uniform)) == pytest.approx(weights[rare] * math.log(Q), rel=1e-5)
    # Logits sharp on the soft target's support recover its entropy, far below log Q.
    target = color.soft_encode(color.ab_bins()[rare]).numpy()
    sharp = np.log(np.maximum(target, 1e-30)).astype(np.float32).reshape(1, 1, 1, Q)
    entropy = -np.sum(target * np.log(np.maximum(target, 1e-30)))
    assert float(loss(y_true, sharp)) == pytest.approx(weights[rare] * entropy, rel=1e-4)


def test_binned_cross_entropy_is_eq_1_of_seed_004():
    y_true = np.array([[[[0.05, -0.95]]]], np.float32)  # U in bin 10, V in bin 0 (of 20)
    uniform = np.zeros((1, 1, 1, 2, 20), np.float32)
    assert float(losses.binned_cross_entropy(y_true, uniform)) == pytest.approx(2 * math.log(20))
    confident = uniform.copy()
    confident[0, 0, 0, 0, 10] = 5.0  # U right, V still uniform
    u_term = -math.log(math.exp(5.0) / (math.exp(5.0) + 19))
    expected = u_term + math.log(20)
    loss = losses.binned_cross_entropy(y_true, confident)
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_bin_weight_lookup_agrees_with_nearest_bin_in_gamut(photo_prior):
    weights = color.rebalancing_weights(photo_prior)
    rng = np.random.default_rng(0)
    centres = color.ab_bins()[rng.integers(0, Q, 500)]
    ab = centres + rng.uniform(-4.9, 4.9, centres.shape).astype(np.float32)  # inside the cell
    looked_up = losses.bin_weight_lookup(weights)(ab).numpy()
    np.testing.assert_allclose(looked_up, weights[color.nearest_bin(ab).numpy()])
    far = np.array([[127.0, -128.0]], np.float32)  # outside every listed cell: still a weight
    assert np.isfinite(losses.bin_weight_lookup(weights)(far).numpy()).all()


def test_huber_bins_rebalancing_weighs_each_pixel_of_the_bin_loss_by_its_colour():
    """Rebalanced by a prior that is mostly grey, a grey target's bin loss shrinks and a
    saturated one's grows by exactly their weights; the Huber part is untouched."""
    import tensorflow as tf

    weights = losses.rarity_weights(skewed_prior())
    weight_of = losses.bin_weight_lookup(weights)
    logits = tf.random.stateless_normal([1, 2, 2, Q], seed=(1, 2))
    for ab, bin_index in (((0.0, 0.0), grey_bin()),
                          ((60.0, 40.0), int(color.bin_index(np.array([60.0, 40.0]))))):
        y_true = tf.constant(np.broadcast_to(np.array(ab) / color.AB_SCALE, (1, 8, 8, 2)),
                             tf.float32)
        outputs = {"ab": y_true, "ab_logits": logits}  # a perfect regression: Huber 0
        plain = float(losses.huber_bins(y_true, outputs))
        rebalanced = float(losses.huber_bins(y_true, outputs, bin_weight_of=weight_of))
        assert rebalanced == pytest.approx(weights[bin_index] * plain, rel=1e-5)
    assert weights[grey_bin()] < 1 < weights[int(color.bin_index(np.array([60.0, 40.0])))]


@pytest.fixture(scope="module")
def lite0_features():
    return losses.frozen_features("efficientnet_lite0", "imagenet")  # real ImageNet weights


def test_feature_distance_is_zero_for_the_truth_and_grows_as_colours_go_wrong(
        sample_photos, lite0_features):
    """On real photos through the real frozen Lite0: the truth scores 0, and the distance
    orders predictions by how wrong their colours are (muted, gray, hue-rotated)."""
    import tensorflow as tf

    lab = np.stack([color.rgb_to_lab_cv2(cv2.resize(cv2.imread(str(p))[..., ::-1], (128, 128),
                                                    interpolation=cv2.INTER_AREA))
                    for p in sample_photos(4)]).astype(np.float32)
    lightness, ab = color.scale_l(lab[..., :1]), color.scale_ab(lab[..., 1:])

    def distance(pred):
        return losses.feature_distance(lite0_features, lightness, ab, pred).numpy()

    truth, slightly_muted = distance(ab), distance(0.9 * ab)
    muted, gray, rotated = distance(0.5 * ab), distance(np.zeros_like(ab)), distance(-ab)
    assert truth.shape == (4,) and np.abs(truth).max() < 1e-6
    assert (0 < slightly_muted).all() and (slightly_muted < muted).all() and (muted < gray).all()
    assert (rotated > muted).all()  # opposite hues are worse than half the chroma
    pred = tf.Variable(0.5 * ab)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(losses.feature_distance(lite0_features, lightness, ab, pred))
    gradient = tape.gradient(loss, pred).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient).max() > 0
    # a short step down the gradient (unit L2 length 0.01) brings it closer to the truth
    step = 0.01 * gradient / np.linalg.norm(gradient)
    assert distance(pred.numpy() - step).mean() < muted.mean() - 1e-3


# --------------------------------------------------------------------------- the registry

def test_every_experiment_names_a_registered_loss_and_builds_it_from_its_config():
    from koala.training import config as training_config

    for name in training_config.experiment_names():
        config = training_config.load_config(name)
        built = losses.build(config, prior=skewed_prior())
        assert isinstance(built, losses.Loss), name
    config = training_config.load_config("zhang_eccv16")
    config.loss.name = "no_such_loss"
    with pytest.raises(training_config.ConfigError, match="huber_bins.*mse_ab"):
        losses.build(config)


def test_the_paper_losses_per_output_kind_are_the_registry_entries_that_say_so():
    assert losses.for_output("regression").fn is losses.mse_ab
    assert losses.for_output("binned").fn is losses.binned_cross_entropy
    y_true = np.zeros((1, 4, 4, 2), np.float32)
    uniform = np.zeros((1, 1, 1, Q), np.float32)  # cross-entropy log Q, weights 1 (no prior)
    assert float(losses.for_output("classification")(y_true, uniform)) == \
        pytest.approx(math.log(Q), rel=1e-5)
    with pytest.raises(ValueError, match="unknown output kind"):
        losses.for_output("ordinal")


@pytest.fixture
def registered(monkeypatch):
    """losses.register for one test: its entries are gone after it."""
    monkeypatch.setattr(losses._LOSSES, "_entries", dict(losses._LOSSES._entries))
    return losses.register


def test_a_loss_gets_the_model_inputs_in_the_loop_when_its_entry_declares_it(
        registered, tmp_path):
    """One registered entry is all a new loss needs: the loop builds it by name and passes
    it the model's inputs, in training and validation, because the entry says it needs them."""
    import keras
    import tensorflow as tf

    from koala.training import config as training_config, loop

    seen = []

    @registered("test_l_weighted", needs_inputs=True)
    def _make(config, prior):
        def loss(y_true, outputs, inputs):
            seen.append(sorted(inputs))
            return tf.reduce_mean(tf.square(y_true - outputs) * (1.0 + inputs["L"]))

        return loss

    @registered("test_plain")
    def _make_plain(config, prior):
        return lambda y_true, outputs: tf.reduce_mean(tf.square(y_true - outputs))

    rng = np.random.default_rng(0)
    gray = rng.uniform(-1, 1, (8, 16, 16, 1)).astype(np.float32)
    target = np.tanh(np.concatenate([gray, -gray], -1)).astype(np.float32)

    def dataset_fn(split, global_batch, context=None):
        data = tf.data.Dataset.from_tensor_slices(({"L": gray}, target)).batch(global_batch)
        return data.repeat() if split == "train" else data

    def model():
        lightness = keras.Input((None, None, 1), name="L")
        ab = keras.layers.Conv2D(2, 3, padding="same", activation="tanh", name="ab")(lightness)
        return keras.Model({"L": lightness}, ab)

    for name in ("test_l_weighted", "test_plain"):
        config = training_config.load_config("cifar10_unet_regression:tiny")
        config.model.update(name="one_conv", output_kind="regression")
        config.data.update(size=16, color_space="lab")
        config.train.update(batch_size=4, steps=2)
        config.loss.name = name
        summary = loop.train(config, tmp_path / name, model=model, dataset_fn=dataset_fn,
                             strategy=tf.distribute.get_strategy())
        assert np.isfinite(summary["train_loss"]) and np.isfinite(summary["val"]["loss"])
    assert len(seen) >= 2 and all(keys == ["L"] for keys in seen)  # traced: train and val
    assert losses.build(config).needs_inputs is False
    with pytest.raises(ValueError, match="registered twice"):
        losses.register("mse_ab")(lambda config, prior: losses.mse_ab)


def test_huber_bins_declares_its_inputs_and_reads_the_prior_only_to_rebalance():
    from koala.training import config as training_config

    config = training_config.load_config("default:tiny")
    asked = []

    def prior():
        asked.append(True)
        return skewed_prior()

    config.loss.rebalance = False
    built = losses.build(config, prior=skewed_prior())
    assert built.needs_inputs is True
    losses.entry("huber_bins").make(config, prior)
    assert not asked  # no rebalancing: the training photos are never read
    config.loss.rebalance = True
    losses.entry("huber_bins").make(config, prior)
    assert asked
