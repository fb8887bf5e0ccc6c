"""One corpus of hostile inputs (tests/hostile_corpus.py) through every door of Koala.

Each entry point has a table: corpus entry -> expected outcome, where "ok" means converted
correctly (the reader's pixels match the true upright sRGB photo), "error: TEXT" a one-line
error that names the file and contains TEXT, and a few door-specific outcomes. Every door
takes the whole corpus as one batch: one bad file never stops the others, and no input is
overwritten. The doors: the reader, records, `koala colorize` (reading files as an
ordinary user does, without root's power to read any file, so that the unreadable file is
refused even when the tests run as root), colorize(), evaluate, the exported graph, the TF
Serving client, the study and the app (`koala app`'s upload API).
"""

import hashlib
import http.client
import json
import os
import pathlib
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import cv2
import hostile_corpus
import numpy as np
import pytest
from colorize_helpers import tiny_bundle, tiny_colorizer  # noqa: F401 (fixtures)

from koala import image_io

REPO = pathlib.Path(__file__).resolve().parents[1]
FILE_ERRORS = {"dangling.jpg": "No such file", "loop_a.jpg": "symbolic links",
               "loop_b.jpg": "symbolic links"}


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    return hostile_corpus.write_png_bomb(tmp_path_factory.mktemp("bomb") / "huge.png")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, bomb):
    """(folder, {name: Entry}) shared read-only by the doors that do not write into it."""
    folder = tmp_path_factory.mktemp("corpus")
    return folder, hostile_corpus.build(folder, bomb)


def expected_outcomes(entries, overrides=None):
    """{name: "ok" | "error: TEXT" | ...}: the corpus's own outcomes, then the door's."""
    table = {name: "ok" if e.outcome == "ok" else f"error: {e.message}"
             for name, e in entries.items()}
    return {**table, **(overrides or {})}


def tree_digest(folder):
    """{relative path: sha256} of every regular file: inputs must never change."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def lab(rgb):
    return cv2.cvtColor(np.ascontiguousarray(rgb, np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def assert_error(message, path, text):
    assert str(path) in message and text in message and "\n" not in message, message


# --------------------------------------------------------------------------- the reader

def test_reader_table(corpus):
    folder, entries = corpus
    for name, outcome in expected_outcomes(entries).items():
        if outcome == "ok":
            hostile_corpus.check(entries[name],
                                 image_io.to_rgb8(image_io.read_image(folder / name)))
        else:
            with pytest.raises(image_io.UnreadableImage) as refused:
                image_io.read_image(folder / name)
            assert_error(str(refused.value), folder / name, outcome.removeprefix("error: "))


# --------------------------------------------------------------------------- records

RECORDS = {"empty.jpg": "skip: not_an_image", "truncated.jpg": "skip: corrupt",
           "notes.jpg": "skip: not_an_image", "huge.png": "skip: too_large",
           "gray16.png": "skip: grayscale", "gray_alpha.png": "skip: grayscale",
           "dangling.jpg": "skip: unreadable", "loop_a.jpg": "skip: unreadable",
           "loop_b.jpg": "skip: unreadable"}


def test_records_table(corpus, tmp_path):
    from koala.data import sources, writer  # noqa: PLC0415

    folder, entries = corpus
    source = sources.folder_source(folder)
    size = 48
    manifest = writer.build(source, tmp_path, writer.Settings(
        source=source.description, size=size, resize="stretch", val_fraction=0.0), processes=1)
    from test_records import read_all  # noqa: PLC0415 (the records test's shard reader)

    examples = read_all(tmp_path)
    skipped = {s["id"]: s for s in manifest["skipped"]}
    expected = expected_outcomes(entries, RECORDS)
    assert set(examples) | set(skipped) == set(expected)  # the folder photo.jpg is no photo
    for name, outcome in expected.items():
        if outcome == "ok":
            truth = lab(cv2.resize(entries[name].expected, (size, size),
                                   interpolation=cv2.INTER_AREA))
            lossy = entries[name].tolerance > 2  # JPEG, GIF: compression, palette
            assert np.abs(examples[name]["lab"] - truth).mean() < (3.0 if lossy else 1.5), name
        else:
            assert skipped[name]["reason"] == outcome.removeprefix("skip: "), name


# --------------------------------------------------------------------------- colorize

def _new_output(before, after, name):
    stem = pathlib.Path(name).stem
    made = [p for p in after if p not in before and pathlib.Path(p).stem in (stem, f"{stem}-1")]
    assert len(made) == 1, (name, made)
    return made[0]


def test_colorize_command_table(tmp_path, bomb, tiny_bundle):  # noqa: F811
    """`koala colorize FOLDER --output FOLDER`, run as a user who may not read
    unreadable.png: outputs beside the inputs, none replaced, "Permission denied" for it."""
    prefix, reason = hostile_corpus.unprivileged()
    if prefix is None:
        pytest.skip(reason)
    entries = hostile_corpus.build(tmp_path, bomb, unprivileged_reader=True)
    assert entries["unreadable.png"].message == "Permission denied"
    before = tree_digest(tmp_path)
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "koala.cli", "colorize", str(tmp_path),
         f"--output={tmp_path}", f"--model={tiny_bundle}", "--keep_color", "--batch_size=4"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]  # some inputs failed ...
    after = tree_digest(tmp_path)
    assert all(after[path] == digest for path, digest in before.items())  # ... none changed
    for name, outcome in expected_outcomes(entries).items():
        if outcome == "ok":  # keep_color: colour photos come back as read; gray ones get L
            output = image_io.to_rgb8(image_io.read_image(tmp_path / _new_output(
                before, after, name)))
            if entries[name].name in ("gray16.png", "gray_alpha.png"):
                assert np.abs(lab(output)[..., 0] - lab(entries[name].expected)[..., 0]
                              ).mean() < 0.5, name
            else:
                hostile_corpus.check(entries[name], output)
        else:
            line = next((line for line in result.stderr.splitlines()
                         if f"{tmp_path / name}:" in line), "")
            assert outcome.removeprefix("error: ") in line, (name, result.stderr[-2000:])


def test_colorize_function_table(corpus, tiny_colorizer):  # noqa: F811
    from koala.inference import colorizer as colorizer_lib  # noqa: PLC0415

    folder, entries = corpus
    for name, outcome in expected_outcomes(entries).items():
        if outcome == "ok":
            output = colorizer_lib.colorize(folder / name, tiny_colorizer, keep_color=True)
            assert output.shape[:2] == entries[name].expected.shape[:2], name
        else:
            with pytest.raises(image_io.UnreadableImage) as refused:
                colorizer_lib.colorize(folder / name, tiny_colorizer)
            assert_error(str(refused.value), folder / name, outcome.removeprefix("error: "))


# --------------------------------------------------------------------------- evaluate

def test_evaluate_table(corpus, tiny_bundle, tmp_path):  # noqa: F811
    from koala.evaluation import evaluate  # noqa: PLC0415

    folder, entries = corpus
    expected = expected_outcomes(entries)
    skipped = []
    samples = {s.name: s for s in evaluate.load_samples(folder, skipped=skipped)}
    assert set(samples) == {n for n, o in expected.items() if o == "ok"}
    for name, sample in samples.items():
        hostile_corpus.check(entries[name], sample.rgb)
    for name, outcome in expected.items():
        if outcome != "ok":
            message = next((m for m in skipped if f"{folder / name}:" in m), "")
            assert_error(message, folder / name, outcome.removeprefix("error: "))
    results = evaluate.run([str(tiny_bundle)], folder, tmp_path, semantic=False)
    assert results["images"] == len(samples) and len(results["skipped"]) == len(skipped)


# --------------------------------------------------------------------------- export graph

GRAPH = {  # the graph reads bytes: no EXIF, no ICC, JPEG/PNG/GIF/BMP only
    "empty.jpg": "error: empty", "truncated.jpg": "error: JPEG",
    "notes.jpg": "error: Unknown image file format", "huge.png": "error: exceeds the limit",
    "pages.tif": "error: Unknown image file format", "exif_rotated.jpg": "ok, stored orientation",
    "display_p3.png": "ok, profile ignored", "cmyk.jpg": "ok, profile ignored",
    "rgb16_p3.png": "ok, profile ignored", "cmyk_no_profile.jpg": "ok, TF's own CMYK inversion",
    "dangling.jpg": "n/a (a file error)", "loop_a.jpg": "n/a (a file error)",
    "loop_b.jpg": "n/a (a file error)"}


@pytest.fixture(scope="module")
def served(tiny_bundle, tmp_path_factory):  # noqa: F811
    from koala.bundle import keras_bundle  # noqa: PLC0415
    from koala.serving import saved_model  # noqa: PLC0415

    base = tmp_path_factory.mktemp("served") / "koala"
    return saved_model.export(keras_bundle.load(str(tiny_bundle)), base)


def test_export_graph_table(corpus, served):
    import tensorflow as tf  # noqa: PLC0415

    folder, entries = corpus
    signature = tf.saved_model.load(str(served)).signatures["serving_default"]
    for name, outcome in expected_outcomes(entries, GRAPH).items():
        if outcome.startswith("n/a"):
            continue
        data = (folder / name).read_bytes()
        if outcome.startswith("error"):
            with pytest.raises(tf.errors.InvalidArgumentError) as refused:
                signature(image_bytes=tf.constant([data]))
            assert outcome.removeprefix("error: ") in refused.value.message, name
            continue
        png = signature(image_bytes=tf.constant([data]))["colorized_bytes"].numpy()[0]
        output = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
        truth = entries[name].expected
        if outcome == "ok, stored orientation":
            truth = np.rot90(truth)
        elif outcome == "ok, profile ignored":  # the stored values, as if they were sRGB
            truth = entries[name].unmanaged
        assert output.shape == truth.shape, name
        tolerance = 2.0 if outcome in ("ok", "ok, profile ignored") else 6.0
        assert np.abs(lab(output)[..., 0] - lab(truth)[..., 0]).mean() < tolerance, name


GRAPH_BOMB_PROBE = """
import json, resource, sys, time
import tensorflow as tf
signature = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
data = tf.constant([open(sys.argv[2], "rb").read()])
signature(image_bytes=tf.stack([tf.io.encode_png(tf.zeros([8, 8, 3], tf.uint8))]))  # warm
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    signature(image_bytes=data)
    outcome = "decoded"
except tf.errors.InvalidArgumentError as error:
    outcome = error.message
seconds = time.perf_counter() - start
growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps({"outcome": outcome, "seconds": seconds, "rss_growth_mb": growth_mb}))
"""


def test_bomb_is_refused_by_the_served_graph_fast_and_small(served, bomb):
    import json  # noqa: PLC0415

    result = subprocess.run([sys.executable, "-c", GRAPH_BOMB_PROBE, str(served), str(bomb)],
                            check=True, capture_output=True, text=True, timeout=120)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"\nserved graph, 20000x20000 PNG: {figures['seconds'] * 1000:.0f} ms, "
          f"peak RSS +{figures['rss_growth_mb']:.0f} MB")
    assert "20000" in figures["outcome"] and "exceeds the limit" in figures["outcome"]
    assert figures["seconds"] < 1.0 and figures["rss_growth_mb"] < 200, figures


# --------------------------------------------------------------------------- client

CLIENT = {"pages.tif": "error: TIFF is not served", "truncated.jpg": "error: HTTP 400",
          "photo.jpg": "error: Is a directory", "exif_rotated.jpg": "ok, stored orientation"}


def test_client_table(corpus, served, tmp_path):
    import tensorflow as tf  # noqa: PLC0415
    from fake_tf_serving import ServingContract, serve  # noqa: PLC0415 (TF Serving's contract)

    from koala.serving import client  # noqa: PLC0415

    folder, entries = corpus
    expected = expected_outcomes(entries, CLIENT)
    ServingContract.models = {"koala": tf.saved_model.load(str(served))}
    url, server = serve(ServingContract)
    errors = {}
    try:
        written = client.colorize_files_via_server(
            url, "koala", [folder / n for n in expected], tmp_path, batch_size=4,
            on_error=lambda path, m: errors.update({path.name: m}))
    finally:
        server.shutdown()
        server.server_close()
    assert {p.stem for p in written} == {pathlib.Path(n).stem for n, o in expected.items()
                                         if o.startswith("ok")}
    for name, outcome in expected.items():
        if outcome.startswith("error"):
            assert_error(errors[name], folder / name, outcome.removeprefix("error: "))


# --------------------------------------------------------------------------- study

STUDY = {**{name: "not listed (logged)" for name in FILE_ERRORS}}


def test_study_table(corpus, tmp_path):
    from koala.study import catalog as study_catalog  # noqa: PLC0415

    folder, entries = corpus
    (tmp_path / "colorized").mkdir()
    cv2.imwrite(str(tmp_path / "colorized" / "one.png"), entries["rgba.png"].expected)
    catalog = study_catalog.Catalog.from_folders(folder, tmp_path / "colorized")
    listed = {image.name: image.id for image in catalog.images.values() if image.kind == "real"}
    expected = expected_outcomes(entries, STUDY)
    assert set(listed) == {n for n, o in expected.items() if not o.startswith("not listed")}
    for name, image_id in listed.items():
        if expected[name] == "ok":
            jpeg = catalog.jpeg_bytes(image_id)
            served = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
            assert served.shape == entries[name].expected.shape, name
            assert np.abs(lab(served) - lab(entries[name].expected)).mean() < 3.0, name
        else:
            with pytest.raises(image_io.UnreadableImage) as refused:
                catalog.jpeg_bytes(image_id)
            assert_error(str(refused.value), folder / name,
                         expected[name].removeprefix("error: "))


# --------------------------------------------------------------------------- app

APP_MAX_BYTES = 1 << 20  # above every corpus file (the bomb is ~0.4 MB): pixels refuse it
APP = {  # the app's answer: "STATUS: a piece of its JSON message" (it names the upload)
    "empty.jpg": "422: empty upload", "truncated.jpg": "422: truncated or corrupt",
    "notes.jpg": "422: not an image", "huge.png": "413: 20000x20000 pixels exceeds the limit"}


def _upload(base, name, data, query="keep_color=1"):
    """POSTs `data` as the page does; returns (status, body)."""
    request = urllib.request.Request(
        f"{base}/api/colorize?{query}", data=data,
        headers={"Content-Type": "application/octet-stream",
                 "X-Filename": urllib.parse.quote(name)})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_app_table(corpus, tiny_colorizer):  # noqa: F811
    """`koala app`'s upload API (koala.app.server, served by uvicorn as the command does) on
    the bytes of every corpus entry: colour photos come back as read (keep_color), gray ones
    with their L; every bad file is refused with its status and a one-line JSON message that
    names it; a body over the byte cap is refused before it is read."""
    import servers  # noqa: PLC0415

    from koala.app.server import create_colorize_app  # noqa: PLC0415

    folder, entries = corpus
    expected = expected_outcomes(entries, APP)
    assert {n for n, o in expected.items() if not o.startswith("ok")} == \
        {n for n, e in entries.items() if e.outcome == "error"}  # every bad file, no fewer
    answers = {}
    with servers.running(create_colorize_app(tiny_colorizer, max_bytes=APP_MAX_BYTES)) as base:
        for name in expected:
            try:
                data = (folder / name).read_bytes()
            except OSError:  # no bytes to send: a file error, not the app's
                assert name in FILE_ERRORS or entries[name].message == "Permission denied"
                continue
            answers[name] = _upload(base, name, data)
        connection = http.client.HTTPConnection(urllib.parse.urlsplit(base).netloc, timeout=30)
        connection.putrequest("POST", "/api/colorize")  # a body over the cap: refused on
        connection.putheader("Content-Length", str(APP_MAX_BYTES + 1))  # its declared size,
        connection.putheader("X-Filename", "big.png")  # before a byte of it is sent
        connection.endheaders()
        answer = connection.getresponse()
        too_big = answer.status, answer.read()
        connection.close()
    assert set(answers) == set(expected) - set(FILE_ERRORS) - (
        set() if os.geteuid() == 0 else {"unreadable.png"})
    for name, (status, body) in answers.items():
        if expected[name] == "ok":
            assert status == 200, (name, body[:300])
            output = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
            if name in ("gray16.png", "gray_alpha.png"):
                assert np.abs(lab(output)[..., 0] - lab(entries[name].expected)[..., 0]
                              ).mean() < 0.5, name
            else:
                hostile_corpus.check(entries[name], output)
            continue
        want_status, _, text = expected[name].partition(": ")
        if not want_status.isdigit():  # the reader's own error, for the bytes: 422
            want_status, text = "422", expected[name].removeprefix("error: ")
        assert status == int(want_status), (name, status, body[:300])
        message = json.loads(body)["error"]
        assert message.startswith(f"{name}: ") and text in message and "\n" not in message, \
            (name, message)
    status, body = too_big
    assert status == 413 and json.loads(body)["error"].startswith(
        "big.png: larger than the upload limit"), body
