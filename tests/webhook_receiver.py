"""A real HTTP webhook receiver on loopback, scripted per path: answer a status, 429 with a
Retry-After, hang past the sender's timeout, or answer slowly. It records every request and checks
its signature both with the Standard Webhooks project's own library and with ours."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError

from webhooks.signing import InvalidSignature, verify


@dataclass
class Received:
    path: str
    at: float  # time.monotonic() when it arrived
    headers: dict[str, str]
    body: bytes
    answered: str
    verified: bool | None  # None when no secret was given for the path

    @property
    def json(self) -> dict:
        import json

        return json.loads(self.body)


class WebhookReceiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self._scripts: dict[str, deque[str]] = defaultdict(deque)
        self._secrets: dict[str, str] = {}
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def script(self, path: str, *answers: str) -> None:
        """The next answers for `path`: "500", "429:2" (Retry-After 2), "hang:5", "slow:0.5"; then 200."""
        self._scripts[path].extend(answers)

    def expect_secret(self, path: str, secret: str) -> None:
        self._secrets[path] = secret

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _next_answer(self, path: str) -> str:
        with self._lock:
            return self._scripts[path].popleft() if self._scripts[path] else "200"

    def _verify(self, path: str, headers: dict[str, str], body: bytes) -> bool | None:
        secret = self._secrets.get(path)
        if secret is None:
            return None
        try:
            Webhook(secret).verify(body, headers)
            official = True
        except WebhookVerificationError:
            official = False
        try:
            verify(secret, headers, body)
            ours = True
        except InvalidSignature:
            ours = False
        assert official == ours, f"the official verifier says {official}, ours says {ours}"
        return official

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {name.lower(): value for name, value in self.headers.items()}
                answer = receiver._next_answer(self.path)
                record = Received(
                    self.path,
                    time.monotonic(),
                    headers,
                    body,
                    answer,
                    receiver._verify(self.path, headers, body),
                )
                with receiver._lock:
                    receiver.received.append(record)
                kind, _, argument = answer.partition(":")
                status, extra = 200, {}
                if kind == "hang" or kind == "slow":
                    time.sleep(float(argument or 30))
                elif kind == "429":
                    status, extra = 429, {"Retry-After": argument or "1"}
                else:
                    status = int(kind)
                reply = b'{"ok": true}' if status < 300 else b'{"error": "scripted"}'
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        return Handler
