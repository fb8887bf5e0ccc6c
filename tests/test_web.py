"""koala/web.py, the one web base of `koala app` and `koala study serve`: the loopback rule
both verbs warn by, the shared security headers, and the bounded request-body read."""

import asyncio

import pytest
from fastapi import HTTPException

from koala import web


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.10", False), ("example.org", False),
    ("localhost.example.org", False), ("", False)])
def test_is_loopback(host, loopback):
    assert web.is_loopback(host) is loopback


def test_security_headers_keep_the_shared_ones_and_add_the_extra():
    headers = web.security_headers("default-src 'self'", {"Cache-Control": "no-store"})
    assert headers == {"Content-Security-Policy": "default-src 'self'",
                       "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                       "Cache-Control": "no-store"}


class FakeRequest:
    """What bounded_body reads of a Starlette request: headers and the body's chunks."""

    def __init__(self, chunks, declared=None):
        self.headers = {} if declared is None else {"content-length": declared}
        self.chunks = chunks
        self.read = 0  # bytes handed out: the read stops at the first chunk over the bound

    async def stream(self):
        for chunk in self.chunks:
            self.read += len(chunk)
            yield chunk


def read(request, max_bytes, too_large=None):
    return asyncio.run(web.bounded_body(request, max_bytes, too_large))


def test_bounded_body_reads_up_to_the_bound():
    assert read(FakeRequest([b"ab", b"cd"], "4"), 4) == b"abcd"
    assert read(FakeRequest([]), 4) == b""


@pytest.mark.parametrize("declared", ["5", "-1", "4 ", "lots"])
def test_bounded_body_refuses_a_declared_length_over_the_bound_before_reading(declared):
    request = FakeRequest([b"ab"], declared)
    with pytest.raises(HTTPException) as refused:
        read(request, 4)
    assert refused.value.status_code == 413 and request.read == 0


def test_bounded_body_stops_a_stream_past_the_bound_with_the_callers_error():
    request = FakeRequest([b"abc", b"de", b"f" * 1000])  # no Content-Length: chunked
    with pytest.raises(ValueError, match="too big"):
        read(request, 4, ValueError("too big"))
    assert request.read == 5  # the third chunk was never asked for
