"""What both web pages (`koala app`, `koala study serve`) need from FastAPI: security headers
on every answer, and their package's static files served by name from a fixed list (no path
from the URL ever reaches the file system)."""

import importlib.resources

from fastapi import HTTPException, Response


def static_text(package, name):
    """`package`/static/`name` as text (shipped inside the wheel)."""
    return (importlib.resources.files(package) / "static" / name).read_text("utf-8")


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
