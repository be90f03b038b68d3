"""Standard Webhooks signatures: `v1,` + base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`.

`verify` is the receiving side, for consumers that would rather not add a library (the official
`standardwebhooks` package verifies the same headers; the tests check both agree).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

from webhooks.secrets import secret_key_bytes

SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300  # as the spec's reference libraries, Stripe and Svix


class InvalidSignature(Exception):
    """The message is not from the holder of the secret, was altered, or is too old (a replay)."""


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key_bytes(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signature_header(secrets: list[str], message_id: str, timestamp: int, body: bytes) -> str:
    """One signature per secret, space-separated (several while a rotated secret overlaps)."""
    return " ".join(signature(secret, message_id, timestamp, body) for secret in secrets)


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise InvalidSignature unless `headers` carry a valid, recent signature of `body` by `secret`.

    `headers` is matched case-insensitively; `body` must be the raw bytes received.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        message_id, timestamp = lowered["webhook-id"], int(lowered["webhook-timestamp"])
        received = lowered["webhook-signature"].split()
    except (KeyError, ValueError) as exc:
        raise InvalidSignature(f"missing or malformed webhook headers: {exc}") from exc
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_seconds:
        raise InvalidSignature("timestamp outside the tolerance (a replay, or a skewed clock)")
    expected = signature(secret, message_id, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in received):
        raise InvalidSignature("no signature matches")
