"""A live socket whose client has just gone: an event pushed to it meanwhile must not end the consumer
before its disconnect leaves its groups (the ASGI server raises on a send after the client closed)."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.utils import ClientDisconnected

from live.socket import dropped_when_gone


def test_a_message_for_a_client_that_just_closed_is_dropped_not_raised():
    sent = []

    async def gone(message: dict) -> None:
        sent.append(message)
        raise ClientDisconnected()

    asyncio.run(dropped_when_gone(gone)({"type": "websocket.send", "text": "{}"}))  # does not raise

    assert sent == [{"type": "websocket.send", "text": "{}"}]
