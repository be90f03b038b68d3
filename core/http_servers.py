"""The HTTP servers the API can run under, and the command line of each (one place for all launchers).

`settings.asgi` carries HTTP and the WebSockets; `settings.wsgi` carries HTTP only.
`bench/run_api_bench.py` measures them side by side; docs/scaling.md says which one is used where.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

# The defaults of API_SERVER and LIVE_SERVER: what bench/run_api_bench.py found cheapest per request
# (granian's WSGI) and the ASGI server the WebSockets are tested under.
DEFAULT_API_SERVER = "granian-wsgi"
DEFAULT_LIVE_SERVER = "uvicorn-asgi"
# Threads per WSGI worker process: requests a process serves at once while others wait on Postgres.
WSGI_THREADS = 4


@dataclass(frozen=True)
class HttpServer:
    name: str
    interface: str  # "asgi" (HTTP and WebSockets) or "wsgi" (HTTP only)
    _argv: Callable[[str, int, int, bool], list[str]]

    def argv(self, host: str, port: int, workers: int = 1, quiet: bool = False) -> list[str]:
        return self._argv(host, port, workers, quiet)


def _uvicorn(host: str, port: int, workers: int, quiet: bool) -> list[str]:
    return [
        *(sys.executable, "-m", "uvicorn", "settings.asgi:application"),
        *("--host", host, "--port", str(port), "--workers", str(workers)),
        *("--no-access-log", "--lifespan", "off"),
        *(("--log-level", "warning") if quiet else ()),
    ]


def _granian(interface: str, target: str) -> Callable[[str, int, int, bool], list[str]]:
    def argv(host: str, port: int, workers: int, quiet: bool) -> list[str]:
        return [
            *(sys.executable, "-m", "granian", "--interface", interface, target),
            *("--host", host, "--port", str(port), "--workers", str(workers)),
            *(("--blocking-threads", str(WSGI_THREADS)) if interface == "wsgi" else ()),
            "--no-access-log",
            *(("--log-level", "warning") if quiet else ()),
        ]

    return argv


def _gunicorn(host: str, port: int, workers: int, quiet: bool) -> list[str]:
    return [
        *(sys.executable, "-m", "gunicorn", "settings.wsgi:application"),
        *("--bind", f"{host}:{port}", "--workers", str(workers)),
        *("--worker-class", "gthread", "--threads", str(WSGI_THREADS)),
        *(("--log-level", "warning") if quiet else ()),
    ]


HTTP_SERVERS = {
    server.name: server
    for server in (
        HttpServer("uvicorn-asgi", "asgi", _uvicorn),
        # asginl: Django's ASGI handler does not speak the lifespan protocol.
        HttpServer("granian-asgi", "asgi", _granian("asginl", "settings.asgi:application")),
        HttpServer("gunicorn-wsgi", "wsgi", _gunicorn),
        HttpServer("granian-wsgi", "wsgi", _granian("wsgi", "settings.wsgi:application")),
    )
}


def server_named(name: str, interface: str) -> HttpServer:
    """The configured server (API_SERVER, LIVE_SERVER), which must speak `interface`."""
    server = HTTP_SERVERS.get(name)
    if server is None or server.interface != interface:
        from django.core.exceptions import ImproperlyConfigured

        choices = ", ".join(n for n, s in HTTP_SERVERS.items() if s.interface == interface)
        raise ImproperlyConfigured(f"{name!r} is not an {interface.upper()} server; choose one of: {choices}")
    return server
