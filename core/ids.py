"""Ids a client chooses that travel into URLs, routes and correlation ids (client-driven workflow ids,
WebSocket client and monitor ids): the one pattern they match. Letters, digits and `. _ : -`,
starting with a letter or digit: nothing that a URL reads as structure (`/ ? # %` or a segment of
dots), so an id stays one path segment wherever it goes. URLs still percent-encode them."""

from __future__ import annotations

import re

WORKFLOW_ID_MAX_LENGTH = 100  # the column's
# A socket's client id travels in its jobs' correlation id (100 characters), behind a short prefix.
SOCKET_ID_MAX_LENGTH = 64
CLIENT_ID_HELP = "letters, digits and . _ : - starting with a letter or digit"
_FIRST, _REST = "[A-Za-z0-9]", "[A-Za-z0-9._:-]"


def client_id_pattern(max_length: int) -> re.Pattern[str]:
    return re.compile(rf"^{_FIRST}{_REST}{{0,{max_length - 1}}}\Z")


def is_client_id(value: object, max_length: int) -> bool:
    return isinstance(value, str) and client_id_pattern(max_length).match(value) is not None
