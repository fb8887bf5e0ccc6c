"""A stand-in for TF Serving's REST predict API over a loaded SavedModel, on a loopback port:
what `koala client` talks to in tests (the real server needs Docker)."""

import base64
import http.server
import json
import re
import threading

import tensorflow as tf

from koala.serving import client


class ServingContract(http.server.BaseHTTPRequestHandler):
    """POST /v1/models/<name>[/versions/<n>]:predict over a loaded SavedModel, as TF Serving."""

    models = {}  # name -> loaded SavedModel (set by the fixture)

    def do_POST(self):  # noqa: N802  (http.server's naming)
        match = re.fullmatch(r"/v1/models/(\w+)(?:/versions/\d+)?:predict", self.path)
        if not match or match.group(1) not in self.models:
            return self.reply(404, {"error": f"Servable not found for request: {self.path}"})
        try:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            signature = self.models[match.group(1)].signatures[
                request.get("signature_name", "serving_default")]
            images = [base64.b64decode(self.input_value(one)["b64"])
                      for one in request["instances"]]
            inputs = {"image_bytes": tf.constant(images)}
            if any(isinstance(one, dict) and "hints" in one for one in request["instances"]):
                inputs["hints"] = tf.constant([one["hints"] for one in request["instances"]],
                                              tf.float32)  # row format: stacked per input
            pngs = signature(**inputs)[client.IMAGE_OUTPUT].numpy()
        except tf.errors.InvalidArgumentError as error:
            return self.reply(400, {"error": error.message})
        except (ValueError, KeyError, TypeError) as error:
            return self.reply(400, {"error": f"malformed request: {error!r}"})
        self.reply(200, {"predictions": [{"b64": base64.b64encode(p).decode()} for p in pngs]})

    @staticmethod
    def input_value(instance):
        """A single named input may be given bare ({"b64": ..}) or by name."""
        return instance.get("image_bytes", instance)

    def reply(self, status, payload):
        self.send_response_raw(status, json.dumps(payload).encode())

    def send_response_raw(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep pytest output clean
        pass


def serve(handler):
    """Starts `handler` on a free loopback port in a thread; returns (url, server)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server
