"""koala client against TF Serving's REST predict contract.

No TF Serving binary installs on the dev machines, so the contract documented in
tensorflow/serving's g3doc/api_rest.md (row format "instances", base64 {"b64": ...} for
names ending in _bytes, {"error": ...} with an HTTP error status) is served here by a
loopback http.server that runs the exported model; against the real
`tensorflow_model_server` only when it is on PATH.
"""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from koala.serving import client, graph, saved_model
from fake_tf_serving import ServingContract, serve
from test_export import REPO, decode_png, photo_bytes, save_tiny_bundle

MODEL_NAME = "koala"


@pytest.fixture(scope="module")
def export_base(tmp_path_factory):
    """TF Serving's model base path holding version 1 of a tiny model."""
    bundle = save_tiny_bundle(tmp_path_factory.mktemp("bundle"))
    return pathlib.Path(
        saved_model.export(bundle, tmp_path_factory.mktemp("served") / MODEL_NAME)).parent


@pytest.fixture(scope="module")
def rest_url(export_base):
    ServingContract.models = {MODEL_NAME: tf.saved_model.load(str(export_base / "1"))}
    url, server = serve(ServingContract)
    yield url
    server.shutdown()
    server.server_close()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_photos(folder):
    """Two real photos of different sizes and formats; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "cat.jpg", folder / "cup.png"]
    paths[0].write_bytes(photo_bytes("chelsea", size=(120, 80)))
    paths[1].write_bytes(photo_bytes("coffee", size=(64, 48), ext=".png"))
    return paths


def test_request_follows_the_documented_row_format():
    body = json.loads(client.request_body([b"\x01\x02"]))
    assert body == {"signature_name": "serving_default", "instances": [{"b64": "AQI="}]}
    assert client.predict_url("localhost:8501/", "koala", 3) == \
        "http://localhost:8501/v1/models/koala/versions/3:predict"
    assert client.IMAGE_OUTPUT == graph.IMAGE_OUTPUT


def test_client_colorizes_through_rest(rest_url, export_base, tmp_path):
    inputs = write_photos(tmp_path / "in")
    written = client.colorize_files_via_server(rest_url, MODEL_NAME, inputs, tmp_path / "out",
                                               batch_size=1)
    assert [p.name for p in written] == ["cat.png", "cup.png"]
    direct = tf.saved_model.load(str(export_base / "1")).signatures["serving_default"](
        image_bytes=tf.constant([p.read_bytes() for p in inputs]))[client.IMAGE_OUTPUT].numpy()
    for path, expected in zip(written, direct):
        np.testing.assert_array_equal(decode_png(path.read_bytes()), decode_png(expected))
    assert decode_png(written[0].read_bytes()).shape == (80, 120, 3)


def test_cli_client_in_a_fresh_process(rest_url, tmp_path):
    inputs = write_photos(tmp_path / "in")
    result = subprocess.run(
        [sys.executable, "-m", "koala.cli", "client", "--url", rest_url, "--model", MODEL_NAME,
         "--output", str(tmp_path / "out"), *map(str, inputs)],
        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cat.png", "cup.png"]


def test_bad_image_reports_the_servers_invalid_argument(rest_url):
    broken = photo_bytes("coffee", size=(64, 48), ext=".png")[:120]  # sound header, no data
    with pytest.raises(client.ClientError, match="(?s)HTTP 400.*PNG"):
        client.predict(rest_url, MODEL_NAME, [broken])


def test_client_checks_each_image_before_sending(rest_url, tmp_path):
    with pytest.raises(client.ClientError, match="image 0: not an image"):
        client.predict(rest_url, MODEL_NAME, [b"not an image"])


def test_unknown_model_reports_http_404(rest_url):
    with pytest.raises(client.ClientError, match="HTTP 404.*Servable not found"):
        client.predict(rest_url, "nosuchmodel", [photo_bytes("coffee", size=(32, 32))])


def test_connection_refused_is_a_clear_error():
    with pytest.raises(client.ClientError, match="cannot reach .*(refused|Errno 111)"):
        client.predict(f"http://127.0.0.1:{free_port()}", MODEL_NAME,
                       [photo_bytes("coffee", size=(8, 8))], timeout=5)


@pytest.mark.parametrize("status, body, problem", [
    (500, b'{"error": "Resource exhausted: OOM"}', "HTTP 500.*Resource exhausted: OOM"),
    (200, b"<html>proxy login</html>", "not JSON"),
    (200, b'{"outputs": []}', "no 'predictions'"),
    (200, b'{"predictions": []}', "asked for 1 images, the server returned 0"),
    (200, b'{"predictions": [{"b64": "aGVsbG8="}]}', "not a PNG"),
    (200, b'{"predictions": [[1, 2]]}', "not a base64 object"),
])
def test_bad_responses_are_clear_errors(status, body, problem):
    class Canned(ServingContract):
        def do_POST(self):  # noqa: N802
            self.send_response_raw(status, body)

    url, server = serve(Canned)
    try:
        with pytest.raises(client.ClientError, match=problem):
            client.predict(url, MODEL_NAME, [photo_bytes("coffee", size=(8, 8))], timeout=10)
    finally:
        server.shutdown()
        server.server_close()


def test_never_overwrites_inputs(tmp_path):
    inputs = write_photos(tmp_path)
    with pytest.raises(client.ClientError, match="is an input image"):
        client.output_paths(inputs, tmp_path)
    with pytest.raises(client.ClientError, match="collide"):
        client.output_paths([tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.png"], tmp_path / "o")


@pytest.mark.skipif(shutil.which("tensorflow_model_server") is None,
                    reason="tensorflow_model_server is not on PATH (no TF Serving binary "
                           "installs on this machine); the loopback REST tests cover the contract")
def test_against_tensorflow_model_server(export_base, tmp_path):
    port = free_port()
    server = subprocess.Popen(
        ["tensorflow_model_server", f"--rest_api_port={port}", f"--port={free_port()}",
         f"--model_name={MODEL_NAME}", f"--model_base_path={export_base}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/v1/models/{MODEL_NAME}", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    pytest.fail("tensorflow_model_server did not come up within 60 s")
                time.sleep(0.5)
        written = client.colorize_files_via_server(url, MODEL_NAME, write_photos(tmp_path / "in"),
                                                   tmp_path / "out")
        assert decode_png(written[0].read_bytes()).shape == (80, 120, 3)
        with pytest.raises(client.ClientError, match="HTTP 400"):
            client.predict(url, MODEL_NAME, [b"not an image"])
    finally:
        server.terminate()
        server.wait(timeout=30)
