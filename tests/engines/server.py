"""Run a small ASGI app (a fake engine speaking a real protocol) with uvicorn in a thread, on loopback."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import uvicorn

from devstack.embedded import free_port, port_is_open


class ServedApp:
    def __init__(self, app) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="off",
                ws="websockets-sansio",
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not port_is_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("the fake engine did not start")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)


@contextlib.contextmanager
def serving(engine, path: str = "") -> Iterator:
    """Serve a fake engine for the block; its base URL (plus `path`) is set as `engine.url`."""
    served = ServedApp(engine)
    engine.url = served.url + path
    try:
        yield engine
    finally:
        served.close()


async def read_body(receive) -> bytes:
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


async def respond(send, status: int, body: bytes, content_type: str = "application/json", headers=()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type.encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})
