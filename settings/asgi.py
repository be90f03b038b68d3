"""ASGI entry point: HTTP through Django; WebSocket routes join here as the live-push issue lands."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.base")
os.environ.setdefault("DATABASE_POOL", "true")  # see settings.base.DATABASE_POOL
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter

application = ProtocolTypeRouter({"http": django_asgi_app})
