"""A small real stand-in for the EmProps Open API, on a loopback port: checks the bearer token,
records every request, and answers as scripted (slowly, 429 then 200, 5xx, a refusal, or not at all)."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "emprops-test-key"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    answered: int | None  # the status sent; None when the connection was dropped


class EmpropsStandIn:
    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.requests: list[Request] = []
        self.collections: dict[str, dict[str, Any]] = {}  # what POST /collections made, by id
        self._scripts: dict[str, deque[str]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.port = 0
        self._start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, path: str, *answers: str) -> None:
        """The next answers for `path`: "500", "429:1" (Retry-After 1), "slow:2", "drop" (close the
        connection unanswered), "400", "404"; then 200."""
        with self._lock:
            self._scripts[path].extend(answers)

    def at(self, method: str, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def accepted(self, method: str, path: str) -> list[Request]:
        return [r for r in self.at(method, path) if r.answered is not None and r.answered < 300]

    def stop(self) -> None:
        """Down: the port refuses connections until `start_again`."""
        self.server.shutdown()
        self.server.server_close()

    def start_again(self) -> None:
        self._start(self.port)

    def _start(self, port: int = 0) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _next(self, path: str) -> str:
        with self._lock:
            return self._scripts[path].popleft() if self._scripts[path] else "200"

    def _collections(self, method: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        """POST /collections makes one (a draft); GET /collections/{id} reads it."""
        if method == "POST" and path == "/collections":
            made = {"id": str(uuid.uuid4()), "status": "draft", **(body or {})}
            with self._lock:
                self.collections[made["id"]] = made
            return 201, {"data": made}
        found = self.collections.get(path.rsplit("/", 1)[-1])
        return (200, {"data": found}) if found else (404, {})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0) or 0))
                body = json.loads(raw) if raw else None
                headers = {name.lower(): value for name, value in self.headers.items()}
                if headers.get("authorization") != f"Bearer {standin.api_key}":
                    self._record(method, headers, body, 401)
                    return self._reply(401, {"error": "unauthorized"})
                answer = standin._next(self.path)
                kind, _, argument = answer.partition(":")
                if kind == "drop":
                    self._record(method, headers, body, None)
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                if kind == "slow":
                    time.sleep(float(argument or 5))
                    kind = "200"
                status = int(kind)
                reply: dict[str, Any] = {
                    "data": {"id": self.path.split("/")[2] if self.path.count("/") > 1 else None}
                }
                if status < 300 and self.path.startswith("/collections"):
                    status, reply = standin._collections(method, self.path, body)
                self._record(method, headers, body, status)
                extra = {"Retry-After": argument or "1"} if status == 429 else {}
                return self._reply(status, reply if status < 300 else {"error": "scripted"}, extra)

            def _record(self, method: str, headers: dict[str, str], body: Any, status: int | None) -> None:
                with standin._lock:
                    standin.requests.append(Request(method, self.path, headers, body, status))

            def _reply(self, status: int, body: Any, extra: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
