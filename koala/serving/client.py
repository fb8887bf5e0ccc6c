"""A client for a Koala export served by TF Serving's REST API (standard library only).

The request and response follow TF Serving's documented predict API:

    POST http://HOST:8501/v1/models/NAME[/versions/N]:predict
    {"signature_name": "serving_default", "instances": [{"b64": "<image bytes>"}, ...]}
    -> {"predictions": [{"b64": "<PNG bytes>"}, ...]}

(a signature with one named input takes each instance as that input's value; inputs and
outputs whose names end in `_bytes` travel base64-encoded as {"b64": ...}). Errors come
back as {"error": "..."} with an HTTP error status, which this client turns into messages.

Each image is checked here first (koala.image_io reads its header: a known format, at most
`max_pixels`), because the server refuses a whole request for one bad image and need not
receive a decompression bomb at all.
"""

import base64
import http.client
import io
import json
import os
import pathlib
import urllib.error
import urllib.request

from koala import hints as hints_lib
from koala import image_io

HINTS_SIGNATURE = "colorize_hints"  # koala.serving.saved_model's (not imported: no TF here)
IMAGE_OUTPUT = "colorized_bytes"  # koala.serving.graph.IMAGE_OUTPUT (not imported: no TF here)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SERVED_FORMATS = ("JPEG", "PNG", "GIF", "BMP")  # what koala.serving.graph.header_shape reads


class ClientError(RuntimeError):
    """The server could not be reached, refused the request, or answered nonsense."""


class RequestRefused(ClientError):
    """The server answered HTTP 400: something in the request (an image) is invalid."""


def predict_url(url, model, version=None):
    """http://HOST:PORT + model (+ version) -> the REST predict endpoint."""
    base = url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        base = "http://" + base
    versioned = f"/versions/{int(version)}" if version is not None else ""
    return f"{base}/v1/models/{model}{versioned}:predict"


def request_body(images, signature="serving_default", hint_points=None):
    """The JSON request for a list of encoded images (bytes); with `hint_points` (per image,
    rows of [x, y, a, b, size] from hint_rows) the export's colorize_hints signature."""
    encoded = [{"b64": base64.b64encode(image).decode("ascii")} for image in images]
    if hint_points is None:
        return json.dumps({"signature_name": signature, "instances": encoded}).encode("utf-8")
    rows = max(1, max(len(points) for points in hint_points))  # one shape per request
    instances = [{"image_bytes": image, "hints": points + [[0.0] * 5] * (rows - len(points))}
                 for image, points in zip(encoded, hint_points)]
    return json.dumps({"signature_name": HINTS_SIGNATURE, "instances": instances}).encode()


def hint_rows(hints, data, name):
    """Raw hints (koala.hints) for the encoded image `data` -> rows [x, y, a, b, size] for
    the export's colorize_hints signature; HintError names `name` and the problem."""
    width, height = image_io.open_header(io.BytesIO(data), name).size
    checked = hints_lib.check(hints, width, height, f"{name}: hints")
    return [list(map(float, hint)) for hint in checked]


_TF_TRACE_LINES = ("[[", "Detected at", "<stack", "Graph execution error")


def _server_error_text(body):
    """TF Serving's {"error": "..."} text on one line (TF's node traces dropped), or the
    start of whatever the body was."""
    try:
        text = str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body[:300].decode("utf-8", "replace") or "(empty body)"
    lines = [line.strip() for line in text.splitlines()]
    kept = " ".join(line for line in lines if line and not line.startswith(_TF_TRACE_LINES))
    return kept or text.strip()


def parse_predictions(body, expected):
    """Response body -> list of PNG bytes; ClientError says what is wrong with it."""
    try:
        response = json.loads(body)
    except ValueError as error:
        raise ClientError(f"the server's answer is not JSON ({error}): "
                          f"{body[:200].decode('utf-8', 'replace')!r}") from None
    if not isinstance(response, dict) or "predictions" not in response:
        keys = sorted(response) if isinstance(response, dict) else type(response).__name__
        raise ClientError(f"the server's answer has no 'predictions' (got {keys})")
    predictions = response["predictions"]
    if not isinstance(predictions, list) or len(predictions) != expected:
        count = len(predictions) if isinstance(predictions, list) else type(predictions).__name__
        raise ClientError(f"asked for {expected} images, the server returned {count} predictions")
    return [_png_bytes(item, index) for index, item in enumerate(predictions)]


def _png_bytes(item, index):
    """One prediction: {"b64": ...} (one output) or {"colorized_bytes": {"b64": ...}}."""
    if isinstance(item, dict) and IMAGE_OUTPUT in item:
        item = item[IMAGE_OUTPUT]
    if not isinstance(item, dict) or not isinstance(item.get("b64"), str):
        raise ClientError(f"prediction {index} is not a base64 object {{'b64': ...}}: "
                          f"{str(item)[:100]}")
    try:
        data = base64.b64decode(item["b64"], validate=True)
    except ValueError as error:
        raise ClientError(f"prediction {index}: invalid base64 ({error})") from None
    if not data.startswith(PNG_SIGNATURE):
        raise ClientError(f"prediction {index} is not a PNG image (starts {data[:8]!r})")
    return data


def check_image(data, name, max_pixels=image_io.DEFAULT_MAX_PIXELS):
    """ClientError naming `name` unless the bytes (or a binary file) are a served format of
    at most max_pixels, from the header alone."""
    file = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        header = image_io.open_header(file, name, max_pixels)
    except image_io.UnreadableImage as error:
        raise ClientError(str(error)) from None
    if header.format not in SERVED_FORMATS:
        raise ClientError(f"{name}: {header.format} is not served (send one of "
                          f"{', '.join(SERVED_FORMATS)})")


def predict(url, model, images, version=None, signature="serving_default", timeout=300.0,
            max_pixels=image_io.DEFAULT_MAX_PIXELS, hints=None):
    """Colorizes encoded images (list of bytes) on the server; returns their PNG bytes.
    `hints`: per image, a list of colour hints (koala.hints) or None; any given sends the
    request to the export's colorize_hints signature (a hint model's)."""
    for index, data in enumerate(images):
        check_image(data, f"image {index}", max_pixels)
    points = None
    if hints is not None and any(hints):
        points = [hint_rows(h or [], data, f"image {index}")
                  for index, (data, h) in enumerate(zip(images, hints))]
    endpoint = predict_url(url, model, version)
    request = urllib.request.Request(
        endpoint, data=request_body(images, signature, points),
        headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        kind = RequestRefused if error.code == 400 else ClientError
        raise kind(f"{endpoint}: HTTP {error.code} {error.reason}: "
                   f"{_server_error_text(error.read())}") from None
    except urllib.error.URLError as error:
        raise ClientError(f"cannot reach {endpoint}: {error.reason} (is TF Serving running "
                          f"there with --rest_api_port, and the model named {model!r}?)") from None
    except TimeoutError:
        raise ClientError(f"{endpoint}: no answer within {timeout:g} s") from None
    except (ConnectionError, http.client.HTTPException) as error:
        raise ClientError(f"{endpoint}: the connection broke ({error!r})") from None
    return parse_predictions(body, len(images))


def output_paths(inputs, output_dir):
    """OUTPUT_DIR/<input stem>.png for each input; refuses to overwrite an input or collide."""
    output_dir = pathlib.Path(output_dir)
    resolved_inputs = {os.path.realpath(p) for p in inputs}  # realpath survives link loops
    outputs = [output_dir / (pathlib.Path(p).stem + ".png") for p in inputs]
    for source, target in zip(inputs, outputs):
        if os.path.realpath(target) in resolved_inputs:
            raise ClientError(f"{target} is an input image; choose another --output folder")
    if len({os.path.realpath(o) for o in outputs}) != len(outputs):
        raise ClientError("two inputs have the same file name stem; their outputs would collide")
    return outputs


def _check_file(path, max_pixels):
    """ClientError naming the file unless it opens as an image of at most max_pixels."""
    try:
        with open(path, "rb") as file:
            check_image(file, path, max_pixels)
    except OSError as error:
        raise ClientError(f"{path}: {error.strerror or error}") from None


def colorize_files_via_server(url, model, inputs, output_dir, batch_size=8, on_error=None,
                              max_pixels=image_io.DEFAULT_MAX_PIXELS, hints_of=None,
                              **predict_kwargs):
    """Sends image files in batches to TF Serving at `url` and writes the colorized PNGs;
    returns their paths (koala.inference.colorizer.colorize_files colorizes in-process).

    A file that is unreadable, not a served image or above `max_pixels` raises
    ClientError, or, given `on_error(path, message)`, is reported there and left out while
    the rest go on; so is an image the server refuses (a refused batch is resent image by
    image to find it), and one whose hints (`hints_of(path)`: koala.hints or None) are bad.
    """
    inputs = [pathlib.Path(p) for p in inputs]
    targets = dict(zip(inputs, output_paths(inputs, output_dir)))
    paths, hints = [], {}
    for path in inputs:  # headers only: a batch is read when it is sent
        try:
            _check_file(path, max_pixels)
            hints[path] = hints_of(path) if hints_of else None
            if hints[path]:
                with open(path, "rb") as file:
                    hint_rows(hints[path], file.read(), str(path))
            paths.append(path)
        except (ClientError, hints_lib.HintError) as error:
            if on_error is None:
                raise
            on_error(path, str(error))
    if any(hints.values()):
        predict_kwargs = {**predict_kwargs, "hints_for": hints}
    pathlib.Path(output_dir).mkdir(parents=True, exist_ok=True)
    written = []
    for start in range(0, len(paths), batch_size):
        batch = paths[start:start + batch_size]
        try:
            results = zip(batch, _predict_paths(url, model, batch, max_pixels, predict_kwargs))
        except RequestRefused:
            if on_error is None or len(batch) == 1:
                raise
            results = _one_by_one(url, model, batch, on_error, max_pixels, predict_kwargs)
        for path, png in results:
            targets[path].write_bytes(png)
            written.append(targets[path])
    return written


def _one_by_one(url, model, batch, on_error, max_pixels, predict_kwargs):
    """(path, PNG) for each image of a refused batch that the server accepts alone."""
    for path in batch:
        try:
            yield path, _predict_paths(url, model, [path], max_pixels, predict_kwargs)[0]
        except RequestRefused as error:
            on_error(path, f"{path}: {error}")


def _predict_paths(url, model, paths, max_pixels, predict_kwargs):
    """predict() on files; `hints_for` in predict_kwargs maps each path to its hints."""
    kwargs = dict(predict_kwargs)
    hints_for = kwargs.pop("hints_for", None)
    if hints_for is not None:
        kwargs["hints"] = [hints_for.get(path) for path in paths]
    return predict(url, model, [p.read_bytes() for p in paths], max_pixels=max_pixels, **kwargs)
