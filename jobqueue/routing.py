"""WebSocket routes."""

from django.urls import path

from jobqueue.live import LiveConsumer
from jobqueue.live_compat import ClientCompatConsumer, MonitorCompatConsumer

websocket_urlpatterns = [
    path("ws", LiveConsumer.as_asgi()),
    path("ws/client/<str:client_id>", ClientCompatConsumer.as_asgi()),
    path("ws/monitor/<str:monitor_id>", MonitorCompatConsumer.as_asgi()),
]
