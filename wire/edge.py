"""The edge: raw bytes taken from a worker's lane become a typed message, or a refusal — never an
exception. The lane they were taken from names the sender (`wire.names`), so every refusal is
counted against the worker that sent it.

A lane message is a Celery task message (protocol 2) in kombu's Redis envelope: the task name in the
headers, `[args, kwargs, embed]` as base64-encoded JSON in the body. Messages carry no positional
arguments; their fields are the kwargs, decoded straight into the task's structure.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from wire import fleet, names, reports
from wire.json_types import JsonObject

Message = reports.JobReport | fleet.FleetMessage
KINDS: dict[str, tuple[str, type[Message]]] = {
    **{kind.task: (names.CONTROL_LANE, kind) for kind in reports.REPORTS},
    **{kind.task: (names.FLEET_LANE, kind) for kind in fleet.FLEET_MESSAGES},
}

# Refusal reasons the edge gives (the take script gives `oversized` before decoding).
OVERSIZED = "oversized"
MALFORMED = "malformed"  # not kombu's envelope around a Celery task message
UNKNOWN_KIND = "unknown_kind"  # a task no lane applies, or one of the other lane's
INVALID = "invalid"  # the task's fields break its structure's types or bounds


class _Headers(msgspec.Struct):
    task: Annotated[str, Meta(max_length=200)]


class _Properties(msgspec.Struct):
    delivery_tag: Annotated[str, Meta(max_length=200)]
    body_encoding: str = "base64"


class _Envelope(msgspec.Struct):
    body: str
    headers: _Headers
    properties: _Properties


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_NoArgs = Annotated[list[Any], Meta(max_length=0)]
_BODIES = {
    task: msgspec.json.Decoder(tuple[_NoArgs, kind, JsonObject | None])  # type: ignore[valid-type]
    for task, (_, kind) in KINDS.items()
}


@dataclass(frozen=True)
class Decoded:
    """A message taken from `sender`'s list of `lane`: typed, or refused with the reason why."""

    lane: str
    sender: str
    message: Message | None
    refusal: str | None = None
    detail: str = ""


def decode(raw: bytes, lane: str, sender: str) -> Decoded:
    """Whatever `raw` holds, a Decoded: any failure at all (malformed, too deep, wrong types, a bug in
    a check) is a refusal of this message alone."""
    try:
        envelope = _ENVELOPE.decode(raw)
    except Exception as error:  # noqa: BLE001  (RecursionError, MemoryError, anything: the consumer lives on)
        return Decoded(lane, sender, None, MALFORMED, _why(error))
    task = envelope.headers.task
    kind = KINDS.get(task)
    if kind is None or kind[0] != lane:
        return Decoded(lane, sender, None, UNKNOWN_KIND, task[:100])
    try:
        body = envelope.body.encode()
        if envelope.properties.body_encoding == "base64":
            body = base64.b64decode(body, validate=True)
        _, message, _ = _BODIES[task].decode(body)
    except Exception as error:  # noqa: BLE001  (whatever a hostile body does, it is refused alone)
        return Decoded(lane, sender, None, INVALID, f"{task}: {_why(error)}")
    return Decoded(lane, sender, message)


def _why(error: Exception) -> str:
    if isinstance(error, msgspec.ValidationError | msgspec.DecodeError | binascii.Error):
        return str(error)[:200]
    return type(error).__name__


def encode(message: Message) -> JsonObject:
    """The message's fields as the task's kwargs."""
    return msgspec.to_builtins(message)  # type: ignore[no-any-return]


def kwargs_repr(message: Message) -> str:
    """What Celery writes in the message's `kwargsrepr` header (shown by Flower, logs): the fields
    without the secret a report proves its attempt with."""
    shown = {k: ("***" if k == names.LEASE_ARG else v) for k, v in encode(message).items()}
    return repr(shown)[:1000]
