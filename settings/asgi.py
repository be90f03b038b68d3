"""ASGI entry point: HTTP through Django; WebSocket live push through Channels (`/ws`)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.base")
os.environ.setdefault("DATABASE_POOL", "true")  # see settings.base.DATABASE_POOL
django_asgi_app = get_asgi_application()

from core.db import limit_sessions  # noqa: E402 (Django is set up above)

limit_sessions("api")

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from live.routing import websocket_urlpatterns  # noqa: E402

# WebSocket clients authenticate with an API key (not a cookie), so a cross-site page cannot ride a
# user's session: no Origin check is needed.
application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": URLRouter(websocket_urlpatterns)})
