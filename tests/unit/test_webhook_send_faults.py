"""A receiver that misbehaves after its status line (stalls, truncates its body, sends bad gzip) still
ends in a result: `send` never raises for what a receiver does, so every attempt is recorded. The
receivers are raw sockets on free loopback ports."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from webhooks.secrets import generate_secret
from webhooks.send import send

HEADERS = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.WEBHOOK_TIMEOUT_SECONDS = 1


def _receiver(answer: bytes, then_wait: float = 0.0) -> Iterator[str]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    done = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)  # the request
            connection.sendall(answer)
            done.wait(then_wait)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        done.set()
        listener.close()


@pytest.mark.parametrize(
    ("answer", "then_wait", "error"),
    [
        ((HEADERS + "Content-Length: 100\r\n\r\npartial").encode(), 3.0, "reading the answer's body failed"),
        ((HEADERS + "Content-Length: 100\r\n\r\npartial").encode(), 0.0, "reading the answer's body failed"),
        (
            (HEADERS + "Content-Encoding: gzip\r\nContent-Length: 12\r\n\r\n").encode() + b"not gzip at all",
            0.0,
            "reading the answer's body failed",
        ),
    ],
    ids=["stalls after its headers", "truncates its body", "sends bad gzip"],
)
def test_a_receiver_that_misbehaves_after_its_status_line_still_gives_a_result(answer, then_wait, error):
    started = time.monotonic()
    for url in _receiver(answer, then_wait):
        result = send(url, "msg_1", '{"ok": true}', [generate_secret()], {})

    assert result.status_code == 200 and result.succeeded  # the status line is the receiver's answer
    assert error in result.error
    assert time.monotonic() - started < 5
