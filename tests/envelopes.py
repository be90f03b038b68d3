"""Lane messages as a worker's Celery app puts them on the broker (no Django: the unit tier uses it)."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any


def envelope(task: str, fields: Any, args: Any = (), *, raw_body: bytes | None = None) -> bytes:
    """A Celery task message in kombu's Redis envelope: `[args, fields, embed]` as base64 JSON in the
    body (or `raw_body`, whatever it is), the task name in the headers."""
    body = raw_body if raw_body is not None else json.dumps([list(args), fields, None]).encode()
    properties = {"delivery_tag": uuid.uuid4().hex, "body_encoding": "base64", "delivery_info": {}}
    return json.dumps(
        {"body": base64.b64encode(body).decode(), "headers": {"task": task}, "properties": properties}
    ).encode()
