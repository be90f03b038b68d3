"""WebSocket routes."""

from django.urls import path

from jobqueue.live import LiveConsumer

websocket_urlpatterns = [path("ws", LiveConsumer.as_asgi())]
