"""The one web base of both pages (`koala app`, `koala study serve`), what each needs from
FastAPI: security headers on every answer, request bodies read up to a bound, their
package's static files served by name from a fixed list (no path from the URL ever reaches
the file system), and the loopback rule by which both verbs warn about a public bind."""

import importlib.resources
import ipaddress

from fastapi import HTTPException, Response


def static_text(package, name):
    """`package`/static/`name` as text (shipped inside the wheel)."""
    return (importlib.resources.files(package) / "static" / name).read_text("utf-8")


def security_headers(content_security_policy, extra=None):
    """A page's security headers: its CSP, no MIME sniffing, no referrer, and `extra`
    ({header: value}) where the page wants more."""
    return {"Content-Security-Policy": content_security_policy,
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            **(extra or {})}


def add_security_headers(app, headers):
    """Every response of `app` carries `headers` (CSP, nosniff, ...)."""

    @app.middleware("http")
    async def security_headers(request, call_next):
        response = await call_next(request)
        response.headers.update(headers)
        return response


def add_static_route(app, package, types):
    """GET /static/{name} for the names of `types` ({name: media type}); others are 404."""

    @app.get("/static/{name}")
    def static_file(name: str):
        if name not in types:
            raise HTTPException(404)
        return Response(static_text(package, name), media_type=types[name])


async def bounded_body(request, max_bytes, too_large=None):
    """The request body, or `too_large` raised (default: HTTPException 413) as soon as it is
    declared (Content-Length) or streamed beyond `max_bytes`: never more is held in memory."""
    too_large = too_large or HTTPException(413, "request too large")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


def is_loopback(host):
    """Whether binding `host` keeps a page on this machine (a host name counts as not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
