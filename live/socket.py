"""Live push over WebSocket (`/ws`): subscribe to jobs, workflows, machines or everything, and get
each event as it commits (from the relay); `resume` replays what a reconnecting client missed.

Client messages: {"type": "auth", "api_key"} (or `?api_key=` in the URL), subscribe_job /
unsubscribe_job {job_id}, subscribe_workflow / unsubscribe_workflow {workflow_id}, subscribe_machine /
unsubscribe_machine {machine_id}, subscribe_all / unsubscribe_all, resume {last_event_id}, ping.
Server messages: {type: <event type>, timestamp, job_id | workflow_id | machine_id, data: <event>},
{"type": "pong"}, {"type": "subscribed" | "unsubscribed", ...}, {"type": "error", code, message}.
A bad message gets an error; the connection stays up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q
from django.utils import timezone

from accounts.auth import api_key_for
from accounts.revocation import key_group
from accounts.scoping import may_read, readable
from core import json_input
from core.db import BIGINT_MAX
from core.ids import CLIENT_ID_HELP, SOCKET_ID_MAX_LENGTH
from events.models import Event
from events.relay import ALL_EVENTS_GROUP, event_message, group_for
from wire.json_types import JsonObject, JsonValue

logger = logging.getLogger(__name__)

SENT_MEMORY = 2000  # event ids remembered per connection, to drop the relay's and resume's duplicates
SUBSCRIPTIONS = {"job": "job_id", "workflow": "workflow_id", "machine": "machine_id"}
_ENTITY_SUBSCRIPTIONS = {
    f"{verb}_{entity}": (entity, verb == "subscribe")
    for entity in SUBSCRIPTIONS
    for verb in ("subscribe", "unsubscribe")
}


Send = Callable[[JsonObject], Awaitable[None]]


def dropped_when_gone(send: Send) -> Send:
    """The ASGI `send`, dropping a message for a client that has just gone. The server raises on a send
    after the client closed (uvicorn's `ClientDisconnected`, an OSError): raised in an event's handler,
    it would end the consumer before its `disconnect` ran, leaving its groups joined for good. The
    disconnect that follows leaves them."""

    async def send_or_drop(message: JsonObject) -> None:
        try:
            await send(message)
        except OSError:
            logger.debug("a %s for a closed socket was dropped", message.get("type"))

    return send_or_drop


class LiveConsumer(AsyncJsonWebsocketConsumer):
    @classmethod
    async def encode_json(cls, content: JsonValue) -> str:
        return json.dumps(content, cls=DjangoJSONEncoder)  # datetimes, UUIDs and decimals as strings

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await super().__call__(scope, receive, dropped_when_gone(send))

    async def connect(self) -> None:
        self.api_key = None
        self.expiry: asyncio.TimerHandle | None = None
        self.groups_joined: dict[str, tuple[str, str]] = {}  # group -> (kind, id)
        self.sent: OrderedDict[int, None] = OrderedDict()
        await self.accept()
        raw_key = self._key_from_query(parse_qs(self.scope.get("query_string", b"").decode()))
        if raw_key is not None:
            await self._authenticate(raw_key)

    def _key_from_query(self, query: dict[str, list[str]]) -> str | None:
        return next(iter(query.get("api_key", [])), None)

    async def disconnect(self, code: int) -> None:
        for group in list(self.groups_joined):
            await self.channel_layer.group_discard(group, self.channel_name)
        await self._forget_key()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        raw = text_data if text_data is not None else bytes_data or b""
        if len(raw) > settings.LIVE_MAX_MESSAGE_BYTES:
            await self._error(
                "message_too_large", f"messages are at most {settings.LIVE_MAX_MESSAGE_BYTES} bytes"
            )
            return
        try:
            content = json_input.loads(raw)
        except json_input.UnstorableJson as refused:
            await self._error(refused.code, refused.message, field=refused.path or None)
            return
        except ValueError:  # malformed JSON, or bytes that are not UTF-8
            await self._error("invalid_message", "messages are JSON objects")
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self._error("invalid_message", 'send a JSON object with a "type"')
            return
        kind = content["type"]
        if kind == "ping":
            await self.send_json({"type": "pong", "timestamp": timezone.now().isoformat()})
        elif kind == "auth":
            await self._authenticate(content.get("api_key"))
        elif self.api_key is None:
            await self._error("unauthenticated", "send {type: auth, api_key} first, or ?api_key= in the URL")
        elif kind in ("subscribe_all", "unsubscribe_all"):
            await self._subscription(kind == "subscribe_all", ALL_EVENTS_GROUP, "all", "")
        elif kind in _ENTITY_SUBSCRIPTIONS:
            entity, subscribe = _ENTITY_SUBSCRIPTIONS[kind]
            field = SUBSCRIPTIONS[entity]
            entity_id = content.get(field)
            if not isinstance(entity_id, str) or not entity_id or len(entity_id) > 200:
                await self._error("invalid_message", f"{kind} needs {field}", field=field)
            elif entity == "job" and not is_uuid(entity_id):
                await self._error("invalid_message", "job_id must be a UUID", field=field)
            else:
                await self._subscription(subscribe, group_for(entity, entity_id), entity, entity_id)
        elif kind == "resume":
            await self._resume(content.get("last_event_id"))
        else:
            await self._error("unknown_message_type", f"unknown message type {kind!r}", field="type")

    async def event_message(self, message: JsonObject) -> None:
        """An event from the relay, for a group this connection joined: passed on if its key may see
        it (its tenant's events; an operator's: every tenant's and the fleet's own)."""
        if self.api_key is not None and may_read(self.api_key, message.get("tenant_id")):
            await self._push(message["event"])

    async def _authenticate(self, raw_key: JsonValue) -> None:
        api_key = await database_sync_to_async(api_key_for)(raw_key) if isinstance(raw_key, str) else None
        if api_key is None:
            await self._error("invalid_api_key", "the API key is missing, unknown or revoked")
            await self.close(code=4401)
            return
        await self._forget_key()
        self.api_key = api_key
        # Revoked, deactivated or deleted: announced to this group (accounts.revocation). Expired: timed here.
        await self.channel_layer.group_add(key_group(api_key.pk), self.channel_name)
        if api_key.expires_at is not None:
            seconds = (api_key.expires_at - timezone.now()).total_seconds()
            self.expiry = asyncio.get_running_loop().call_later(
                max(seconds, 0), lambda: asyncio.ensure_future(self.api_key_closed({}))
            )
        await self.send_json({"type": "authenticated", "client": api_key.name})

    async def api_key_closed(self, message: JsonObject) -> None:
        """This socket's key was revoked, deactivated, deleted or has expired: the socket ends."""
        await self._error("api_key_revoked", "the API key was revoked or has expired")
        await self.close(code=4401)

    async def _forget_key(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        if self.api_key is not None:
            await self.channel_layer.group_discard(key_group(self.api_key.pk), self.channel_name)

    async def _refuse_id(self, field: str) -> None:
        """The id in the socket's URL (`field`) does not match `core.ids`: said, and the socket closed."""
        await self._error(
            "invalid_id", f"the URL's {field}: {CLIENT_ID_HELP}, at most {SOCKET_ID_MAX_LENGTH}", field=field
        )
        await self.close(code=4400)

    async def _join(self, group: str, kind: str, entity_id: str) -> bool:
        """Join `group` (left again on disconnect), or refuse past LIVE_MAX_SUBSCRIPTIONS."""
        if group not in self.groups_joined and len(self.groups_joined) >= settings.LIVE_MAX_SUBSCRIPTIONS:
            await self._error(
                "too_many_subscriptions",
                f"a connection follows at most {settings.LIVE_MAX_SUBSCRIPTIONS} subscriptions;"
                " unsubscribe from one first",
            )
            return False
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined[group] = (kind, entity_id)
        return True

    async def _leave(self, group: str) -> None:
        await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_joined.pop(group, None)

    async def _subscription(self, subscribe: bool, group: str, kind: str, entity_id: str) -> None:
        if not subscribe:
            await self._leave(group)
        elif not await self._join(group, kind, entity_id):
            return
        reply = {"type": "subscribed" if subscribe else "unsubscribed", "subscription": kind}
        if entity_id:
            reply[SUBSCRIPTIONS[kind]] = entity_id
        await self.send_json(reply)

    async def _resume(self, last_event_id: JsonValue) -> None:
        if (
            isinstance(last_event_id, bool)
            or not isinstance(last_event_id, int)
            or not 0 <= last_event_id <= BIGINT_MAX
        ):
            await self._error(
                "invalid_message", "resume needs last_event_id (an integer)", field="last_event_id"
            )
            return
        missed = await database_sync_to_async(self._missed)(last_event_id)
        for event in missed:
            await self._push(event)
        await self.send_json({"type": "resumed", "replayed": len(missed)})

    def _missed(self, last_event_id: int) -> list[JsonObject]:
        """Events after `last_event_id` for this connection's subscriptions, from the log."""
        assert self.api_key is not None  # resume is refused before authentication
        events = readable(Event.objects.all(), self.api_key).filter(id__gt=last_event_id).order_by("id")
        if ALL_EVENTS_GROUP not in self.groups_joined:
            match = Q(pk__in=[])
            for kind, entity_id in self.groups_joined.values():
                match |= Q(**{SUBSCRIPTIONS[kind]: entity_id})
            events = events.filter(match)
        return [event_message(e) for e in events[: settings.LIVE_RESUME_MAX_EVENTS]]

    async def _push(self, event: JsonObject) -> None:
        if event["id"] in self.sent:
            return  # already sent (the relay delivers at least once; resume may overlap live)
        self.sent[event["id"]] = None
        if len(self.sent) > SENT_MEMORY:
            self.sent.popitem(last=False)
        message = {"type": event["type"], "timestamp": event["created_at"], "data": event}
        for field in ("job_id", "workflow_id", "machine_id"):
            if event.get(field):
                message[field] = event[field]
        await self.send_json(message)

    async def _error(self, code: str, message: str, field: str | None = None) -> None:
        error = {"type": "error", "code": code, "message": message}
        if field:
            error["field"] = field
        await self.send_json(error)


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
