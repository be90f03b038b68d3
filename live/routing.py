"""WebSocket routes."""

from django.urls import path

from live.emp_sockets import EmpClientConsumer, EmpMonitorConsumer
from live.socket import LiveConsumer

websocket_urlpatterns = [
    path("ws", LiveConsumer.as_asgi()),
    path("ws/client/<str:client_id>", EmpClientConsumer.as_asgi()),
    path("ws/monitor/<str:monitor_id>", EmpMonitorConsumer.as_asgi()),
]
