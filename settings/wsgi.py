"""WSGI entry point: the REST API, admin and static files through Django (no WebSockets; those are
served by the ASGI application in `settings.asgi`)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.base")
# Each of the server's threads borrows a pooled connection per request (see settings.base.DATABASE_POOL).
os.environ.setdefault("DATABASE_POOL", "true")
application = get_wsgi_application()

from core.db import limit_sessions  # noqa: E402 (Django is set up above)

limit_sessions("api")
