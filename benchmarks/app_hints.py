"""The app's re-colorize latency after a colour point changes, at 1 MP and 12 MP.

  python benchmarks/app_hints.py [--model default] [--repeats 5]

`koala app`'s server (koala.app.server, uvicorn on a loopback port, in this process) gets the
photo as the page sends it after each edit: the whole photo with its points in X-Hints, and
answers the full-resolution PNG. Per size: the median wall time of a request with 5 points
and, in the same run, of the automatic request (no points) and of decode + PNG encode alone
(the floor of any request); ratios against the automatic one. The photos are a Kodak photo
resized (1 MP: 1224x816; 12 MP: 4240x2832), sent as JPEG (quality 92). Prints one JSON line.
"""

import argparse
import json
import pathlib
import statistics
import threading
import time
import urllib.parse
import urllib.request

import cv2

REPO = pathlib.Path(__file__).resolve().parents[1]
PHOTO = REPO.parent / "shared" / "data" / "benchmark" / "kodak24" / "kodim23.png"
SIZES = {"1mp": (1224, 816), "12mp": (4240, 2832)}


def serve(app):
    import uvicorn  # noqa: PLC0415

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def post(url, data, hints=None):
    headers = {"Content-Type": "application/octet-stream", "X-Filename": "photo.jpg"}
    if hints:
        headers["X-Hints"] = urllib.parse.quote(json.dumps(hints))
    start = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(f"{url}/api/colorize", data=data,
                                                       headers=headers), timeout=300) as answer:
        answer.read()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from koala import image_io  # noqa: PLC0415
    from koala.app.server import create_colorize_app  # noqa: PLC0415
    from koala.inference import colorizer as colorizer_lib  # noqa: PLC0415
    from koala.inference import png  # noqa: PLC0415

    if not PHOTO.is_file():
        raise SystemExit(f"benchmarks/app_hints.py needs {PHOTO}")
    colorizer = colorizer_lib.Colorizer(args.model)
    if not colorizer.takes_hints:
        raise SystemExit(f"{args.model} takes no colour hints")
    server, url = serve(create_colorize_app(colorizer))
    out = {"model": args.model, "engine": colorizer.runtime.engine, "repeats": args.repeats}
    try:
        for label, (width, height) in SIZES.items():
            rgb = cv2.resize(image_io.read_image(PHOTO), (width, height),
                             interpolation=cv2.INTER_CUBIC)
            data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
            hints = [{"x": width * fx, "y": height * fy, "rgb": "#3060c0", "size": 8}
                     for fx, fy in ((0.2, 0.2), (0.5, 0.3), (0.8, 0.5), (0.3, 0.8), (0.7, 0.9))]
            post(url, data, hints)  # warm: shapes, the interpreter's allocation
            timings = {"hints": [], "automatic": [], "floor": []}
            for _ in range(args.repeats):
                timings["hints"].append(post(url, data, hints))
                timings["automatic"].append(post(url, data))
                start = time.perf_counter()
                png.encode(image_io.decode(data, "photo.jpg"))
                timings["floor"].append(time.perf_counter() - start)
            medians = {k: statistics.median(v) for k, v in timings.items()}
            out[f"{label}_hints_s"] = round(medians["hints"], 3)
            out[f"{label}_automatic_s"] = round(medians["automatic"], 3)
            out[f"{label}_decode_encode_floor_s"] = round(medians["floor"], 3)
            out[f"{label}_hints_vs_automatic"] = round(medians["hints"] / medians["automatic"], 3)
    finally:
        server.should_exit = True
    print(json.dumps(out))


if __name__ == "__main__":
    main()
