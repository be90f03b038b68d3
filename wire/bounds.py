"""The bounded types messages are built from. A value outside them fails decoding (`wire.edge`),
so nothing past the edge meets an unbounded string, list or nesting."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from wire.json_types import JsonValue
from wire.names import MAX_WORKER_ID_LENGTH, WORKER_ID_PATTERN

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$"  # ids and names: printable, no spaces, no quotes
MAX_NAMES = 500  # job types, capabilities, models, customers per list
MAX_SEEN_ATTEMPTS = 10_000
MAX_TEXT = 2000  # free text: an engine's health detail
MAX_ERROR_CODE = 100
MAX_ERROR_MESSAGE = 4000
MAX_DEPTH = 64  # nesting of free-form JSON (results, error details, telemetry): as the API's own bound
MAX_EPOCH_SECONDS = 2**33  # the year 2242: a timestamp Postgres can hold
MAX_RUNTIME_MS = 10 * 365 * 24 * 3600 * 1000

WorkerId = Annotated[str, Meta(pattern=WORKER_ID_PATTERN, max_length=MAX_WORKER_ID_LENGTH)]
Name = Annotated[str, Meta(pattern=NAME_PATTERN, max_length=200)]
ShortText = Annotated[str, Meta(max_length=200)]
Text = Annotated[str, Meta(max_length=MAX_TEXT)]
JobId = Annotated[str, Meta(min_length=1, max_length=100)]
Lease = Annotated[str, Meta(max_length=100)]
Attempt = Annotated[int, Meta(ge=0, le=1_000_000)]
Milliseconds = Annotated[int, Meta(ge=0, le=MAX_RUNTIME_MS)]
Names = Annotated[list[Annotated[str, Meta(max_length=500)]], Meta(max_length=MAX_NAMES)]
Epoch = Annotated[float, Meta(ge=0, lt=MAX_EPOCH_SECONDS)]


def check_depth(value: JsonValue, what: str, max_depth: int = MAX_DEPTH) -> None:
    """Free-form JSON nested at most `max_depth` deep (ValueError otherwise); iterative, so a hostile
    value cannot exhaust the stack of the process that checks it."""
    pending: list[tuple[JsonValue, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: JsonValue = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            raise ValueError(f"{what} is nested deeper than {max_depth} levels")
        pending.extend((child, depth + 1) for child in children)
