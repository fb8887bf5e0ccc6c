"""A FastAPI app served by uvicorn on a free localhost port in a thread, for browser tests."""

import contextlib
import threading
import time


@contextlib.contextmanager
def running(app):
    """Yields the app's base URL (http://127.0.0.1:PORT) while it serves."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
