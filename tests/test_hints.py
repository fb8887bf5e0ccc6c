"""Colour hints (koala.hints, Zhang et al. 2017) through every door: the hint map, the
training simulation, and a hint bundle made by `koala train` (default:tiny with hints) run
by Keras, LiteRT (its .tflite), the SavedModel's colorize_hints signature and the CLI."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf
from colorize_helpers import save_tiny_bundle
from hint_helpers import PHOTO, hint_bundle, shipped_hint_bundle  # noqa: F401 (fixtures)

from koala import hints as hints_lib
from koala import image_io
from koala.bundle import files, keras_bundle
from koala.data import simulated_hints
from koala.inference import colorizer as colorizer_lib
from koala.serving import graph, saved_model, tflite
from koala.training import config as training_config


# --------------------------------------------------------------------------- the hint map

def test_check_names_the_file_and_the_problem():
    cases = [([{"x": 10, "y": 5}], "needs exactly one colour"),
             ([{"x": 100, "y": 5, "ab": [1, 2]}], "outside the 64x32 image"),
             ([{"x": 1, "y": 1, "rgb": "#12345"}], "is not a colour"),
             ([{"x": 1, "y": 1, "rgb": [0, 300, 0]}], "0-255"),
             ([{"x": 1, "y": 1, "ab": [200, 0]}], r"\[-128, 127\]"),
             ([{"x": 1, "y": 1, "ab": [0, 0], "size": 0}], "size must be"),
             ([{"x": 1, "y": 1, "ab": [0, 0], "colour": 1}], "unknown keys"),
             ({"x": 1}, "must be a list")]
    for hints, message in cases:
        with pytest.raises(hints_lib.HintError, match=f"photo.jpg: .*{message}"):
            hints_lib.check(hints, 64, 32, "photo.jpg")
    with pytest.raises(hints_lib.HintError, match="h.json: not JSON"):
        hints_lib.parse_json("[{", "h.json")


def test_rgb_counts_by_its_chroma():
    (_, _, a, b, _), = hints_lib.check([{"x": 0, "y": 0, "rgb": "#ff0000"}], 4, 4)
    assert (a, b) == pytest.approx((80.1, 67.2), abs=0.3)  # sRGB red in CIE Lab (D65)
    (_, _, a, b, _), = hints_lib.check([{"x": 0, "y": 0, "rgb": [128, 128, 128]}], 4, 4)
    assert abs(a) < 0.1 and abs(b) < 0.1


def test_hint_map_places_squares_in_working_coordinates():
    checked = hints_lib.check([{"x": 20.5, "y": 10.5, "ab": [64, -32], "size": 4},
                               {"x": 0, "y": 0, "ab": [10, 10]}], 40, 20)
    full = hints_lib.hint_map(checked, 40, 20, 40, 20)
    assert full[..., 2].sum() == 16 + 1
    np.testing.assert_allclose(full[9:13, 19:23], [[[0.5, -0.25, 1.0]] * 4] * 4)
    half = hints_lib.hint_map(checked, 40, 20, 20, 10)
    # input pixels 19-22 (x) and 9-12 (y) overlap working pixels 9-11 and 4-6: 3 x 3
    assert half[5, 10, 2] == 1 and half[0, 0, 2] == 1 and half[..., 2].sum() == 9 + 1


def test_tf_hint_map_equals_the_numpy_one():
    rng = np.random.default_rng(0)
    for _ in range(20):
        width, height = rng.integers(20, 300, 2)
        work = rng.integers(8, 64, 2)
        raw = [{"x": float(rng.uniform(-0.5, width - 0.5)),
                "y": float(rng.uniform(-0.5, height - 0.5)),
                "ab": rng.uniform(-100, 100, 2).tolist(), "size": float(rng.uniform(0.5, 40))}
               for _ in range(rng.integers(1, 8))]
        checked = hints_lib.check(raw, width, height)
        expected = hints_lib.hint_map(checked, width, height, work[1], work[0])
        points = np.array([[x, y, a, b, s] for x, y, a, b, s in checked] + [[0, 0, 0, 0, 0]])
        actual = graph.hint_map(points, height, width, work[0], work[1]).numpy()
        np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_protocol_hints_are_the_true_mean_colour_of_their_squares():
    rgb = np.random.default_rng(1).integers(0, 256, (256, 256, 3), np.uint8)
    hints = hints_lib.protocol_hints(rgb, 200, np.random.default_rng(2))
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    corners = []
    for hint in hints:
        col, row = int(hint["x"] - 2.5), int(hint["y"] - 2.5)
        corners.append((row, col))
        np.testing.assert_allclose(hint["ab"], lab[row:row + 6, col:col + 6, 1:].mean((0, 1)),
                                   atol=1e-3)
    rows = np.array(corners)[:, 0]
    assert 0 <= rows.min() and rows.max() <= 250
    assert abs(rows.mean() - 125.5) < 10 and 45 < rows.std() < 70  # N(125.5, 62.75), clipped


def test_simulated_hints_follow_the_paper_distribution():
    ab = tf.random.stateless_uniform([32, 32, 2], [0, 1], -1, 1)
    maps = [simulated_hints.simulate(ab, tf.constant([3, i], tf.int64)).numpy()
            for i in range(400)]
    none = np.mean([m[..., 2].sum() == 0 for m in maps])
    assert 0.15 < none < 0.32  # 1/8 + 7/8 * 1/8 = 0.23
    one_colour = tf.fill([32, 32, 2], 0.25)
    for i in range(20):
        hinted = simulated_hints.simulate(one_colour, tf.constant([5, i], tf.int64)).numpy()
        inside = hinted[..., 2] > 0
        np.testing.assert_allclose(hinted[inside][:, :2], 0.25, atol=1e-6)
        assert np.all(hinted[~inside] == 0)


# --------------------------------------------------------------------------- propagation

def _two_regions(colour=(0.4, -0.3)):
    """ab = 0 on a 32x32 map whose left and right halves have orthogonal features (stride
    4), with one hint square on the left half."""
    features = np.zeros((1, 8, 8, 4), np.float32)
    features[..., :4, 0] = 1.0
    features[..., 4:, 1] = 1.0
    hint_map = np.zeros((1, 32, 32, 3), np.float32)
    hint_map[0, 2:6, 2:6] = (*colour, 1.0)
    return np.zeros((1, 32, 32, 2), np.float32), features, hint_map


def test_propagation_spreads_a_hint_over_pixels_with_its_features_only():
    """A hint recolours the pixels whose features match the hinted ones, across the image,
    and not the nearer pixels whose features differ (a distance falloff would); no hints
    changes nothing, exactly."""
    from koala.models.hint_propagation import HintPropagation

    ab, features, hint_map = _two_regions()
    layer = HintPropagation(reach=1.0)  # the far end counts as near: features decide
    out = layer(ab, features, hint_map).numpy()[0]
    same_far = out[26:, 2:12]  # the left half's far end: 20+ pixels away, same features
    other_near = out[2:6, 20:]  # the right half, next to the hint: other features
    assert np.abs(same_far - (0.4, -0.3)).max() < 0.05, same_far.mean((0, 1))
    assert np.abs(other_near).max() < 0.02, other_near.mean((0, 1))
    no_hints = layer(ab + 0.1, features, np.zeros_like(hint_map)).numpy()
    np.testing.assert_array_equal(no_hints, ab + 0.1)


def test_a_propagation_model_keeps_its_correction_in_every_decoding():
    """inference_model blends the heads before the correction, which then applies to the
    default, accurate and vivid decodings alike; with no hints each is the plain blend."""
    from koala.models import effnet_unet

    model = effnet_unet.build(weights=None, decoder_filters=(16, 8, 8, 8, 8), hints=True,
                              propagation=True)
    blends = dict(accurate=effnet_unet.Blend(0.5, 0.38), vivid=effnet_unet.Blend(0.0, 0.38,
                  gain=1.8), default=effnet_unet.Blend(0.25, 0.6, gain=1.2))
    blended = effnet_unet.inference_model(model, **blends)
    lightness = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 1)).astype(np.float32)
    hint_map = np.zeros((1, 64, 64, 3), np.float32)
    plain = blended({"L": lightness, "hints": hint_map})
    hint_map[0, 30:36, 30:36] = (0.5, 0.5, 1.0)
    hinted = blended({"L": lightness, "hints": hint_map})
    for name in ("ab", "ab_accurate", "ab_vivid"):
        before = np.asarray(plain[name])[0, 30:36, 30:36]
        after = np.asarray(hinted[name])[0, 30:36, 30:36]
        assert np.abs(after - 0.5).mean() < 0.5 * np.abs(before - 0.5).mean(), name
    heads = model({"L": lightness, "hints": np.zeros_like(hint_map)})
    alone = effnet_unet.BlendedAB(*blends["accurate"])(heads["ab"], heads["ab_logits"])
    np.testing.assert_allclose(np.asarray(plain["ab_accurate"]), np.asarray(alone), atol=1e-6)


# --------------------------------------------------------------------------- a hint bundle

def _photo(shared_data):
    return image_io.read_image(shared_data / PHOTO)


def test_the_bundle_says_it_takes_hints(hint_bundle):
    assert hint_bundle.has_hint_input and hint_bundle.meta["hints"] is True
    assert files.read_info(hint_bundle.path).takes_hints


def test_no_hints_is_the_automatic_result_and_hints_act_locally(hint_bundle, shared_data):
    photo = _photo(shared_data)
    colorizer = colorizer_lib.Colorizer(hint_bundle)
    automatic = colorizer_lib.colorize(photo, model=colorizer)
    no_hints = colorizer_lib.colorize(photo, model=colorizer, hints=[])
    assert np.abs(no_hints.astype(int) - automatic).max() <= 1  # eager vs graph rounding
    hint = {"x": 600, "y": 100, "ab": [-60, 60], "size": 40}
    hinted = colorizer_lib.colorize(photo, model=colorizer, hints=[hint]).astype(int)
    change = np.abs(hinted - automatic).max(-1)
    assert change[80:120, 580:620].mean() > 2 * max(change[400:, :200].mean(), 0.05)


def test_litert_and_keras_agree_with_hints(hint_bundle, shared_data, tmp_path):
    photo = _photo(shared_data)
    hints = [{"x": 600, "y": 100, "ab": [-60, 60], "size": 40},
             {"x": 100, "y": 400, "rgb": "#3050c0", "size": 12}]
    keras_out = colorizer_lib.colorize(photo, model=colorizer_lib.Colorizer(hint_bundle),
                                       hints=hints)
    tflite.add_tflite_to_bundle(hint_bundle, parity_photos=[shared_data / PHOTO])
    lite = colorizer_lib.Colorizer(str(hint_bundle.path), engine="litert")
    assert lite.runtime.engine == "LiteRT" and lite.takes_hints
    lite_out = colorizer_lib.colorize(photo, model=lite, hints=hints)
    assert np.abs(lite_out.astype(int) - keras_out).max() <= 1


def test_saved_model_hint_signature_matches_colorize(hint_bundle, shared_data, tmp_path):
    photo_bytes = (shared_data / PHOTO).read_bytes()
    hints = [{"x": 600, "y": 100, "ab": [-60, 60], "size": 40}]
    exported = saved_model.export(hint_bundle, tmp_path / "export")
    loaded = tf.saved_model.load(str(exported))
    assert "colorize_hints" in loaded.signatures
    points = tf.constant([[[600, 100, -60, 60, 40], [0, 0, 0, 0, 0]]], tf.float32)
    served = loaded.signatures["colorize_hints"](image_bytes=tf.constant([photo_bytes]),
                                                 hints=points)
    served = tf.io.decode_png(served["colorized_bytes"][0]).numpy().astype(int)
    local = colorizer_lib.colorize(_photo(shared_data), model=colorizer_lib.Colorizer(
        hint_bundle, engine="keras"), hints=hints)
    assert np.abs(served - local).max() <= 2


def test_serving_client_sends_hints_to_the_hint_signature(hint_bundle, shared_data, tmp_path):
    from fake_tf_serving import ServingContract, serve

    from koala.serving import client

    exported = saved_model.export(hint_bundle, tmp_path / "export")
    ServingContract.models = {"koala": tf.saved_model.load(str(exported))}
    url, server = serve(ServingContract)
    try:
        photo = shared_data / PHOTO
        hints = {"kodim23.png": [{"x": 600, "y": 100, "ab": [-60, 60], "size": 40}]}
        (written,) = client.colorize_files_via_server(
            url, "koala", [photo], tmp_path / "out",
            hints_of=lambda path: hints_lib.for_photo(hints, path))
        served = image_io.read_image(written).astype(int)
        local = colorizer_lib.colorize(_photo(shared_data), model=colorizer_lib.Colorizer(
            hint_bundle, engine="keras"), hints=hints["kodim23.png"])
        assert np.abs(served - local).max() <= 2
        automatic = colorizer_lib.colorize(_photo(shared_data), model=colorizer_lib.Colorizer(
            hint_bundle, engine="keras"))
        assert np.abs(served - automatic).max() > 2  # the hints reached the model
        errors = []
        bad = {"kodim23.png": [{"x": 1, "y": 1, "rgb": "blue"}]}
        assert client.colorize_files_via_server(
            url, "koala", [photo], tmp_path / "bad", on_error=lambda p, m: errors.append(m),
            hints_of=lambda path: hints_lib.for_photo(bad, path)) == []
        assert len(errors) == 1 and "kodim23.png: hints: hint 0: rgb" in errors[0]
    finally:
        server.shutdown()
        server.server_close()


def test_palette_offers_the_likeliest_bins_in_keras_and_litert(shipped_hint_bundle,
                                                               shared_data):
    photo = _photo(shared_data)
    palettes = {engine: colorizer_lib.Colorizer(str(shipped_hint_bundle), engine=engine)
                .palette(photo, 600, 100) for engine in ("keras", "litert")}
    for colours in palettes.values():
        assert len(colours) == 8
        probabilities = [c["probability"] for c in colours]
        assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1
        assert all(len(c["rgb"]) == 7 and c["rgb"].startswith("#") for c in colours)
    assert [c["ab"] for c in palettes["keras"][:3]] == [c["ab"] for c in palettes["litert"][:3]]
    # the suggestion is of that point: the distribution differs between far-apart points
    other = colorizer_lib.Colorizer(str(shipped_hint_bundle)).palette(photo, 20, 500)
    assert [c["probability"] for c in other] != [c["probability"] for c in palettes["litert"]]
    with pytest.raises(hints_lib.HintError, match="outside"):
        colorizer_lib.Colorizer(str(shipped_hint_bundle)).palette(photo, 900, 10)


def test_a_model_without_hints_refuses_them(tmp_path):
    colorizer = colorizer_lib.Colorizer(str(save_tiny_bundle(tmp_path)))
    with pytest.raises(hints_lib.HintError, match="takes no colour hints"):
        colorizer_lib.colorize(np.zeros((8, 8), np.uint8), model=colorizer,
                               hints=[{"x": 1, "y": 1, "ab": [0, 0]}])


def test_cli_hints_for_a_folder_skip_only_the_photo_with_bad_hints(hint_bundle, shared_data,
                                                                  tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("kodim01.png", "kodim02.png"):
        (inputs / name).write_bytes((shared_data / "benchmark" / "kodak24" / name).read_bytes())
    hints_file = tmp_path / "hints.json"
    hints_file.write_text(json.dumps({"kodim01.png": [{"x": 10, "y": 10, "rgb": "#ff0000"}],
                                      "kodim02.png": [{"x": 5000, "y": 10, "ab": [0, 0]}]}))
    result = subprocess.run(
        [sys.executable, "-m", "koala.cli", "colorize", str(inputs), "--output",
         str(tmp_path / "out"), "--model", str(hint_bundle.path), "--hints", str(hints_file)],
        capture_output=True, text=True, timeout=300)
    assert (tmp_path / "out" / "kodim01.png").is_file()
    assert not (tmp_path / "out" / "kodim02.png").exists()
    lines = [line for line in result.stderr.splitlines() if "kodim02.png" in line]
    assert lines and "outside the 768x512 image" in lines[0], result.stderr
    assert result.returncode != 0


def test_warm_start_from_an_automatic_bundle_gives_that_model_until_it_trains(
        tmp_path, shared_data):
    """config.model.init: a hint model warm-started from a bundle without hints (as
    default:hints starts from v3) copies every layer by name, keeps its hint convolutions at
    zero, and so computes exactly the automatic model; a bundle of another architecture is
    refused."""
    from hint_helpers import tiny_run

    from koala.models import effnet_unet
    from koala.training import builders

    automatic = keras_bundle.load(tiny_run(tmp_path / "automatic", shared_data, hints=False))
    config = training_config.load_config("default:tiny")
    config.model.kwargs.hints = True
    model = builders.build_model(config)
    builders.warm_start(model, str(automatic.path))
    hint_convs = [layer for layer in model.layers if layer.name.startswith("hints")
                  and layer.weights]
    assert len(hint_convs) == 6 and all(not np.any(w) for l in hint_convs
                                       for w in l.get_weights())
    for layer in automatic.model.layers:
        for ours, theirs in zip(model.get_layer(layer.name).get_weights(), layer.get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    lightness = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 1)).astype(np.float32)
    expected = automatic.model({"L": lightness}, training=False)
    got = model({"L": lightness, "hints": np.zeros((1, 64, 64, 3), np.float32)}, training=False)
    np.testing.assert_allclose(got["ab"], expected["ab"], atol=1e-6)
    other = effnet_unet.build(64, weights=None, decoder_filters=(8, 8, 8, 8, 8))
    with pytest.raises(ValueError, match="needs a bundle of the same architecture"):
        builders.warm_start(other, str(automatic.path))


def test_warm_start_from_a_shipped_hint_model_keeps_its_trained_propagation(
        shipped_hint_bundle):
    """Continuing from a shipped hint model (--config.model.init=default on v5): the
    propagation, which the shipped graph applies after its blend, outside the trained
    sub-model, starts from its trained values, not from its initial ones."""
    from koala.training import builders

    config = training_config.load_config("default:tiny")
    config.model.kwargs.hints = config.model.kwargs.propagation = True
    fresh = builders.build_model(config)
    initial = [w.copy() for w in fresh.get_layer("hint_propagation").get_weights()]
    shipped = keras_bundle.load(shipped_hint_bundle).model.get_layer("hint_propagation")
    assert not all(np.allclose(a, b) for a, b in zip(shipped.get_weights(), initial))
    builders.warm_start(fresh, str(shipped_hint_bundle))
    for ours, theirs in zip(fresh.get_layer("hint_propagation").get_weights(),
                            shipped.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
