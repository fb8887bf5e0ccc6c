"""The study's web server (FastAPI): one photo at a time, "Real" / "Fake", votes to SQLite.

Routes: `/` the study page; `/api/next` and `/api/vote` its JSON API; `/image/{id}` the
photos, by opaque id only; `/results` (+ `.json`, `.csv`) behind a random key that the
server logs at start, so participants cannot read which photos are fake.
Nothing is uploaded: the only body accepted is a vote, at most MAX_BODY_BYTES of JSON.
"""

import json
import re
import secrets

from absl import logging
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from koala import image_io, web
from koala.study import db as study_db
from koala.study import results, stats

COOKIE = "koala_participant"
PARTICIPANT_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
MAX_BODY_BYTES = 1024  # a vote is ~60 bytes of JSON
SECURITY_HEADERS = web.security_headers(
    "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
STATIC_TYPES = {"study.js": "text/javascript", "study.css": "text/css"}
VOTE_ERRORS = {study_db.UnknownParticipant: 403, study_db.UnknownImage: 404,
               study_db.AlreadyVoted: 409}


def _parse_vote(body):
    """(image id, answer) of a vote body, or HTTPException 400/422."""
    try:
        vote = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "the body is not JSON") from None
    if not isinstance(vote, dict) or set(vote) != {"image", "answer"}:
        raise HTTPException(422, 'a vote is {"image": id, "answer": "real" | "fake"}')
    if not isinstance(vote["image"], str) or vote["answer"] not in study_db.ANSWERS:
        raise HTTPException(422, 'a vote is {"image": id, "answer": "real" | "fake"}')
    return vote["image"], vote["answer"]


def create_study_app(catalog, database, results_key):
    """The study's web app over a Catalog and a StudyDB; results need `?key=results_key`."""
    database.register_images(catalog.images.values())
    app = FastAPI(title="Koala: Fake or real?", docs_url=None, redoc_url=None, openapi_url=None)

    web.add_security_headers(app, SECURITY_HEADERS)
    web.add_static_route(app, "koala.study", STATIC_TYPES)
    _add_image_route(app, catalog)
    _add_question_routes(app, catalog, database, web.static_text("koala.study", "study.html"))
    _add_results_routes(app, database, results_key)
    return app


def _add_image_route(app, catalog):
    """The study's images, by opaque id."""

    @app.get("/image/{image_id}")
    def image(image_id: str):
        if catalog.get(image_id) is None:
            raise HTTPException(404, "unknown image")
        try:
            jpeg = catalog.jpeg_bytes(image_id)
        except image_io.UnreadableImage as error:  # same answer for both kinds
            logging.warning("cannot serve %s", error)
            raise HTTPException(404, "unknown image") from None
        return Response(jpeg, media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=3600"})


def _add_question_routes(app, catalog, database, page):
    """The study page (it gives a new participant a cookie), its next question and votes."""

    def known_participant(request):
        """The participant id of the request's cookie, or None if it names nobody."""
        participant = request.cookies.get(COOKIE, "")
        if PARTICIPANT_PATTERN.match(participant) and database.is_participant(participant):
            return participant
        return None

    def participant_of(request):
        participant = known_participant(request)
        if participant is None:
            raise HTTPException(403, "unknown participant: open the study page first")
        return participant

    def next_question(participant):
        image, answered, total = database.progress(participant, catalog.images.keys())
        return {"image": image, "url": image and f"/image/{image}",
                "answered": answered, "total": total}

    @app.get("/", response_class=HTMLResponse)
    def study_page(request: Request):
        response = HTMLResponse(page, headers={"Cache-Control": "no-store"})
        if known_participant(request) is None:
            participant = database.new_participant(catalog.images.keys())
            response.set_cookie(COOKIE, participant, max_age=90 * 24 * 3600, httponly=True,
                                samesite="strict")
        return response

    @app.get("/api/next")
    def api_next(request: Request):
        return JSONResponse(next_question(participant_of(request)),
                            headers={"Cache-Control": "no-store"})

    @app.post("/api/vote")
    async def api_vote(request: Request):
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise HTTPException(415, "votes are JSON")
        image, answer = _parse_vote(await web.bounded_body(request, MAX_BODY_BYTES))
        participant = await run_in_threadpool(participant_of, request)
        if catalog.get(image) is None:
            raise HTTPException(404, "unknown image")
        try:
            await run_in_threadpool(database.vote, participant, image, answer)
        except study_db.VoteError as error:
            raise HTTPException(VOTE_ERRORS[type(error)], type(error).__name__) from None
        return await run_in_threadpool(next_question, participant)


def _add_results_routes(app, database, results_key):
    """The results as HTML, JSON and CSV, for whoever has the key the server logged."""

    def require_key(key):
        if not secrets.compare_digest(key.encode(), results_key.encode()):
            raise HTTPException(403, "the results need the key that the server logged")

    def summary():
        return stats.summarize(database.rows(), database.images())

    @app.get("/results", response_class=HTMLResponse)
    def results_page(key: str = ""):
        require_key(key)
        links = (f'<p><a href="/results.json?key={key}">JSON</a> · '
                 f'<a href="/results.csv?key={key}">CSV</a></p>')
        return HTMLResponse(results.to_html(summary(), links),
                            headers={"Cache-Control": "no-store"})

    @app.get("/results.json")
    def results_json(key: str = ""):
        require_key(key)
        return JSONResponse(summary(), headers={"Cache-Control": "no-store"})

    @app.get("/results.csv")
    def results_csv(key: str = ""):
        require_key(key)
        return Response(results.to_csv(summary()), media_type="text/csv",
                        headers={"Cache-Control": "no-store"})
