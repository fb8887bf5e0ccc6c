"""`koala app`'s web server (FastAPI): drop photos, get them colorized at full resolution.

Routes: `/` the page; `/static/{app.js,app.css}`; `POST /api/colorize` takes one photo as
the raw request body and answers the colorized PNG at the photo's full resolution, or a
JSON {"error": one line naming the photo and the problem}. Colour hints (koala.hints, as
the CLI's JSON list) travel URL-encoded in the X-Hints header; `POST /api/palette?x=&y=`
takes the photo (and X-Hints) and answers {"colors": [...]}: the colours the model finds
most likely at that pixel, for the page's colour picker. The page re-sends the photo with
each change: the server keeps nothing between requests.
Uploads are bounded in bytes (declared and streamed) and in pixels (read from the header
before decoding, koala.image_io), validated by decoding, and only ever held in memory for
the request: nothing is written to disk, kept after the response or served to anyone else.
At most one colorization per CPU runs at once; others wait their turn.
"""

import os
import threading
import urllib.parse

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from koala import hints as hints_lib
from koala import image_io, vividness, web
from koala.inference import png

DEFAULT_MAX_BYTES = 50 << 20
DEFAULT_MAX_PIXELS = 50_000_000  # 50 MP: a big camera photo; ~1 GB of float temporaries
SECURITY_HEADERS = web.security_headers(
    "default-src 'self'; img-src 'self' blob:; style-src 'self'; frame-ancestors 'none'",
    {"Cache-Control": "no-store"})
STATIC_TYPES = {"app.js": "text/javascript", "app.css": "text/css"}
MAX_HINTS = 1000  # hints in one request
PALETTE_SIZE = 8  # colours suggested at a point


def _parse_bool(text):
    if text not in ("0", "1", "true", "false"):
        raise ValueError("expected 0, 1, true or false")
    return text in ("1", "true")


# Per-request options passed through to Colorizer.colorize_many, each with its parser.
REQUEST_OPTIONS = {"keep_color": _parse_bool, "vividness": vividness.check}


class UploadRefused(Exception):
    """An upload that is answered with `status` and a one-line `message`."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _upload_name(request):
    name = urllib.parse.unquote(request.headers.get("x-filename", "")).strip()
    return name.replace("\n", " ")[:200] or "the photo"


def _options(query):
    options = {}
    for key, value in query.items():
        if key not in REQUEST_OPTIONS:
            raise UploadRefused(422, f"unknown option {key!r} (known: {sorted(REQUEST_OPTIONS)})")
        try:
            options[key] = REQUEST_OPTIONS[key](value)
        except ValueError as error:
            raise UploadRefused(422, f"option {key}: {error}") from None
    return options


def _hints(request, name):
    """The X-Hints header (URL-encoded JSON list of koala.hints) or None."""
    raw = request.headers.get("x-hints")
    if not raw:
        return None
    try:
        hints = hints_lib.parse_json(urllib.parse.unquote(raw), f"{name}: hints")
    except hints_lib.HintError as error:
        raise UploadRefused(422, str(error)) from None
    if not isinstance(hints, list) or len(hints) > MAX_HINTS:
        raise UploadRefused(422, f"{name}: hints must be a list of at most {MAX_HINTS} hints")
    return hints


def _point(query, name):
    try:
        return float(query["x"]), float(query["y"])
    except (KeyError, ValueError):
        raise UploadRefused(422, f"{name}: the palette needs numbers x and y") from None


def _default_vividness(colorizer):
    """The model's default vividness in percent, or "" when it has no such control."""
    value = colorizer.bundle.meta.get("vividness")
    return "" if value is None else str(round(100 * float(value)))


def create_colorize_app(colorizer, max_bytes=DEFAULT_MAX_BYTES, max_pixels=DEFAULT_MAX_PIXELS,
                        **options):
    """`koala app`'s web app around a loaded koala.inference.colorizer.Colorizer; `options`
    go to every call (per-request REQUEST_OPTIONS override them)."""
    app = FastAPI(title="Koala", docs_url=None, redoc_url=None, openapi_url=None)
    page = (web.static_text("koala.app", "index.html").replace("{{max_bytes}}", str(max_bytes))
            .replace("{{max_megapixels}}", f"{max_pixels / 1e6:g}")
            .replace("{{vividness}}", _default_vividness(colorizer))
            .replace("{{hints}}", "1" if colorizer.takes_hints else ""))
    turns = threading.Semaphore(os.cpu_count() or 1)

    def colorize_png(data, name, request_options):
        with turns:  # bounds memory: one full-resolution photo per CPU at a time
            try:
                image = image_io.decode(data, name, max_pixels)
            except image_io.UnreadableImage as error:
                status = 413 if isinstance(error, image_io.ImageTooLarge) else 422
                raise UploadRefused(status, str(error)) from None
            del data
            try:
                colorized = colorizer.colorize_many([image], **{**options, **request_options})[0]
            except ValueError as error:  # HintError too: a hint outside the photo, ...
                raise UploadRefused(422, f"{name}: {error}") from None
            return png.encode(colorized), colorized.shape

    def palette(data, name, x, y, hints):
        with turns:
            try:
                image = image_io.decode(data, name, max_pixels)
                return colorizer.palette(image, x, y, hints, PALETTE_SIZE)
            except image_io.UnreadableImage as error:
                status = 413 if isinstance(error, image_io.ImageTooLarge) else 422
                raise UploadRefused(status, str(error)) from None
            except ValueError as error:  # HintError too: a point outside, bad hints
                raise UploadRefused(422, f"{name}: {error}") from None

    async def read_photo(request, name):
        data = await web.bounded_body(request, max_bytes, UploadRefused(
            413, f"{name}: larger than the upload limit of {max_bytes / 1e6:.0f} MB"))
        if not data:
            raise UploadRefused(422, f"{name}: empty upload")
        return data

    web.add_security_headers(app, SECURITY_HEADERS)
    web.add_static_route(app, "koala.app", STATIC_TYPES)

    @app.exception_handler(UploadRefused)
    async def refused(request, error):
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.get("/", response_class=HTMLResponse)
    def index():
        return HTMLResponse(page)

    @app.post("/api/colorize")
    async def colorize_upload(request: Request):
        name = _upload_name(request)
        data = await read_photo(request, name)  # first: a client still sending gets its answer
        request_options = _options(request.query_params)
        hints = _hints(request, name)
        if hints:
            request_options["hints"] = [hints]
        encoded, shape = await run_in_threadpool(colorize_png, data, name, request_options)
        return Response(encoded, media_type="image/png",
                        headers={"X-Image-Width": str(shape[1]), "X-Image-Height": str(shape[0])})

    @app.post("/api/palette")
    async def palette_upload(request: Request):
        name = _upload_name(request)
        data = await read_photo(request, name)
        x, y = _point(request.query_params, name)
        hints = _hints(request, name)
        colors = await run_in_threadpool(palette, data, name, x, y, hints)
        return JSONResponse({"colors": colors})

    return app
