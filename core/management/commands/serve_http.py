"""`manage.py serve_http api|live`: run the configured HTTP server in this process's place.

`api` is the REST API, admin and static files under API_SERVER (WSGI, API_PROCESSES processes);
`live` is the WebSockets under LIVE_SERVER (ASGI). The front routes between them (docker/nginx/).
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from core.http_servers import server_named


class Command(BaseCommand):
    help = "Run the REST API (WSGI) or the live server (ASGI) under its configured HTTP server."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("role", choices=["api", "live"])
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, role: str, host: str, port: int, **options: Any) -> None:
        if role == "api":
            argv = server_named(settings.API_SERVER, "wsgi").argv(host, port, settings.API_PROCESSES)
        else:
            argv = server_named(settings.LIVE_SERVER, "asgi").argv(host, port)
        os.execv(argv[0], argv)
