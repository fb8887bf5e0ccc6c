"""Every registered model builds at any size its stride allows, trains, and matches its paper."""

import re

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from koala import color, models
from koala.training import losses
from koala.models import outputs, unet

# Small but complete variants: every layer of the paper's model, fewer channels, random
# backbone weights (offline). The paper's widths are checked by the parameter-count test.
FAST = {
    "koalarization": dict(embedding_source="input", embedding_dim=16),
    "effnet_head": dict(backbone="efficientnet_lite0", weights=None),
    "effnet_unet": dict(weights=None),
    "zhang_eccv16": dict(width=0.125),
    "iizuka": dict(width=0.125, global_size=64, num_classes=5),
    "unet": dict(head="classification", base_width=8),
}
EMBEDDING_DIM = 16
# The other heads and options, built (not trained) too.
VARIANTS = list(FAST.items()) + [
    ("unet", dict(head="regression", base_width=8)),
    ("koalarization", dict(embedding_source="none", upsampling="bilinear")),
    ("iizuka", dict(width=0.125, global_size=64)),
]


def feeds(model, batch, height, width, seed=0):
    """Random inputs for every input of `model` (L in [-1, 1], optional embedding)."""
    rng = np.random.default_rng(seed)
    out = {"L": rng.uniform(-1, 1, (batch, height, width, 1)).astype("float32")}
    if "embedding" in model.input:
        out["embedding"] = rng.normal(size=(batch, model.input["embedding"].shape[-1]))
    return out


def colour_output(outputs):
    """The ab (or ab-logits) tensor of a model's outputs, single tensor or dict."""
    if not isinstance(outputs, dict):
        return outputs
    return outputs["ab"] if "ab" in outputs else outputs["ab_logits"]


def expected_shape(name, config, batch, size):
    kind = models.describe(name, **config)["output"]
    if kind == "classification":
        return (batch, size // 4, size // 4, len(color.ab_bins()))
    if kind == "binned":
        return (batch, size, size, 2, unet.NUM_BINS)
    return (batch, size, size, 2)


def test_every_registered_model_has_a_fast_test_config():
    assert sorted(FAST) == models.names()


def test_describe_reports_backbone_and_output():
    assert models.describe("koalarization")["backbone"] == "inception_resnet_v2"
    assert models.describe("koalarization", embedding_source="none")["backbone"] == "none"
    assert models.describe("effnet_head")["backbone"] == "efficientnet_b7"
    assert models.describe("zhang_eccv16")["output"] == "classification"
    assert models.describe("unet")["output"] == "regression"
    assert models.describe("unet", head="classification")["output"] == "binned"
    with pytest.raises(KeyError, match="known: "):
        models.build("no_such_model")


def test_koalarization_parameter_count_is_table_1():
    """Table 1 of seed 001 with the paper's 1001-d Inception embedding, conv = k*k*in*out + out."""
    def conv(k, c_in, c_out):
        return k * k * c_in * c_out + c_out

    encoder = (conv(3, 1, 64) + conv(3, 64, 128) + conv(3, 128, 128) + conv(3, 128, 256)
               + conv(3, 256, 256) + conv(3, 256, 512) + conv(3, 512, 512) + conv(3, 512, 256))
    fusion = conv(1, 256 + 1001, 256)
    decoder = (conv(3, 256, 128) + conv(3, 128, 64) + conv(3, 64, 64) + conv(3, 64, 32)
               + conv(3, 32, 2))
    assert (encoder, fusion, decoder) == (5_827_200, 322_048, 424_802)
    model = models.build("koalarization", embedding_source="input", embedding_dim=1001)
    assert model.count_params() == encoder + fusion + decoder == 6_574_050
    ablation = models.build("koalarization", embedding_source="none")
    assert ablation.count_params() == encoder + conv(1, 256, 256) + decoder


def test_koalarization_layers_follow_table_1():
    model = models.build("koalarization", input_size=64, embedding_dim=EMBEDDING_DIM)
    strides = [model.get_layer(f"encoder_conv{i}").strides for i in range(1, 9)]
    assert strides == [(2, 2), (1, 1), (2, 2), (1, 1), (2, 2), (1, 1), (1, 1), (1, 1)]
    assert model.get_layer("fusion").output.shape == (None, 8, 8, 256 + EMBEDDING_DIM)
    assert model.get_layer("decoder_output").activation.__name__ == "tanh"
    assert model.get_layer("decoder_up1").interpolation == "nearest"
    bilinear = models.build("koalarization", input_size=64, embedding_dim=4, upsampling="bilinear")
    assert bilinear.get_layer("decoder_up3").interpolation == "bilinear"


def test_koalarization_embedding_from_an_in_graph_backbone():
    model = models.build("koalarization", embedding_source="backbone",
                         backbone="efficientnet_lite0", weights=None)
    assert list(model.input) == ["L"]
    assert model.get_layer("fusion").output.shape[-1] == 256 + 1280
    assert model({"L": np.zeros((1, 64, 96, 1), "float32")}).shape == (1, 64, 96, 2)


@pytest.mark.parametrize("name,config", VARIANTS)
@pytest.mark.parametrize("size", [64, 96, pytest.param(224, marks=pytest.mark.slow)])
def test_builds_at_size_with_named_layers(name, config, size):
    model = models.build(name, input_size=size, **config)
    assert colour_output(model(feeds(model, 2, size, size))).shape == expected_shape(
        name, config, 2, size)
    unnamed = [layer.name for layer in model.layers if is_default_name(layer)]
    assert not unnamed, f"layers left with Keras' automatic names: {unnamed}"


def is_default_name(layer):
    """True for a name Keras made up: the class in snake case, maybe with a _N suffix."""
    snake = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", layer.__class__.__name__)
    snake = re.sub(r"([a-z])([A-Z])", r"\1_\2", snake).lower()
    return re.fullmatch(rf"{snake}(_\d+)?", layer.name) is not None


@pytest.mark.parametrize("name", ["koalarization", "zhang_eccv16", "iizuka", "unet"])
def test_fully_convolutional_models_take_any_size_divisible_by_8(name):
    model = models.build(name, **FAST[name])
    out = colour_output(model(feeds(model, 1, 40, 72)))
    reduction = 4 if models.describe(name)["output"] == "classification" else 1
    assert out.shape[1:3] == (40 // reduction, 72 // reduction)


def test_iizuka_global_path_shares_the_low_level_weights():
    model = models.build("iizuka", input_size=64, width=0.125, global_size=64)
    convs = [layer for layer in model.layers if layer.name.startswith("low")]
    assert len(convs) == 18  # 6 blocks x (conv, BN, ReLU), created once
    assert model.get_layer("low1_conv").weights[0].shape == (3, 3, 1, 8)
    assert model.output.shape == (None, 64, 64, 2)  # no class head unless num_classes


def test_effnet_head_adds_each_backbone_activation():
    model = models.build("effnet_head", input_size=64, backbone="efficientnet_lite0",
                         weights=None, channels=(64, 32, 24, 16, 16))
    adds = [model.get_layer(f"head_add{level}").output.shape[1] for level in range(1, 5)]
    assert adds == [4, 8, 16, 32]  # strides 16, 8, 4, 2 of a 64 px input
    assert model.get_layer("head_top_conv").kernel_size == (1, 1)
    assert model.get_layer("ab").activation.__name__ == "tanh"


@pytest.mark.slow
def test_effnet_head_on_b7_has_the_papers_7x7x1344_top_block():
    model = models.build("effnet_head", input_size=224, weights=None)  # efficientnet_b7
    assert model.get_layer("head_top_act").output.shape == (None, 7, 7, 1344)
    assert model.output.shape == (None, 224, 224, 2)


def test_models_with_custom_layers_save_and_load(tmp_path):
    for name in ("koalarization", "unet"):
        model = models.build(name, input_size=32, **FAST[name])
        model.save(tmp_path / f"{name}.keras")
        loaded = keras.saving.load_model(tmp_path / f"{name}.keras")
        inputs = feeds(model, 1, 32, 32)
        np.testing.assert_allclose(loaded(inputs), model(inputs), atol=1e-6)


def test_classification_output_decodes_to_the_annealed_mean_upsampled():
    bins = color.ab_bins()
    logits = np.full((1, 2, 2, len(bins)), -50.0, np.float32)
    logits[..., 7] = 50.0  # certain of bin 7 everywhere
    ab = outputs.to_target(logits, "classification", (8, 8))
    assert ab.shape == (1, 8, 8, 2)
    np.testing.assert_allclose(ab, np.broadcast_to(bins[7] / 128.0, (1, 8, 8, 2)), atol=1e-5)


def test_unet_bins_round_trip():
    values = np.array([-1.0, -0.96, 0.0, 0.04, 0.51, 0.99, 1.0], np.float32)
    index = unet.to_bins(values).numpy()
    assert index.tolist() == [0, 0, 10, 10, 15, 19, 19]
    centres = unet.bin_centres()
    sharp = tf.one_hot(index, unet.NUM_BINS) * 100.0
    np.testing.assert_allclose(unet.from_bins(sharp), centres[index], atol=1e-5)
    assert np.all(np.abs(centres[index] - values) <= 0.05 + 1e-6)  # half a bin width


# --------------------------------------------------------------------------- training

def load_batch(paths, size):
    """Real photos -> (L scaled [N, size, size, 1], ab scaled [N, size, size, 2])."""
    rgb = [cv2.resize(cv2.imread(str(p))[..., ::-1], (size, size), interpolation=cv2.INTER_AREA)
           for p in paths]
    lab = color.rgb_to_lab(np.stack(rgb).astype("float32") / 255.0)
    return color.scale_l(lab[..., :1]), color.scale_ab(lab[..., 1:])


def loss_for(name, config, ab):
    prior = color.smoothed_prior(color.histogram_counts(color.unscale_ab(ab).numpy()))
    return losses.for_output(models.describe(name, **config)["output"], prior)


@pytest.mark.parametrize("name", sorted(FAST))
def test_trains_on_real_photos(name, sample_photos):
    keras.utils.set_random_seed(0)
    config = FAST[name]
    lightness, ab = load_batch(sample_photos(4), 32)
    model = models.build(name, input_size=32, **config)
    inputs = {"L": lightness}
    if "embedding" in model.input:
        inputs["embedding"] = tf.random.stateless_normal((4, EMBEDDING_DIM), (1, 2))
    loss_fn = loss_for(name, config, ab)
    optimizer = keras.optimizers.Adam(1e-3)
    history = []
    variables = model.trainable_variables
    for _ in range(6):
        with tf.GradientTape() as tape:
            loss = loss_fn(ab, colour_output(model(inputs, training=True)))
        grads = tape.gradient(loss, variables)  # None for an unused head (iizuka's classes)
        optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
        history.append(float(loss))
    assert np.isfinite(history).all()
    assert min(history[-3:]) < history[0], history


def test_koala_models_command_lists_parameters_and_backbone():
    from koala.commands import models as command

    (row,) = command.rows(["koalarization"])
    assert row["params"] == 6_573_794  # Table 1 with keras' 1000 Inception logits
    assert (row["backbone"], row["output"]) == ("inception_resnet_v2", "regression")
