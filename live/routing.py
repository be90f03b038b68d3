"""WebSocket routes."""

from django.urls import path

from live.compat import ClientCompatConsumer, MonitorCompatConsumer
from live.socket import LiveConsumer

websocket_urlpatterns = [
    path("ws", LiveConsumer.as_asgi()),
    path("ws/client/<str:client_id>", ClientCompatConsumer.as_asgi()),
    path("ws/monitor/<str:monitor_id>", MonitorCompatConsumer.as_asgi()),
]
