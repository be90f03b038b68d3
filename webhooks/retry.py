"""Which answers are worth trying again at all, and when a failed delivery is (the outbox's schedule
with the webhook settings)."""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime

from django.conf import settings

from outbox.schedule import RetryPolicy

# 4xx answers that say "try later" rather than "never".
RETRYABLE_CLIENT_ERRORS = frozenset({408, 409, 429})
GONE = 410


def is_success(status_code: int | None) -> bool:
    return status_code is not None and 200 <= status_code < 300


def is_final_rejection(status_code: int | None) -> bool:
    """A 4xx other than 408/409/429: the receiver will not take this message, retrying is pointless."""
    return status_code is not None and 400 <= status_code < 500 and status_code not in RETRYABLE_CLIENT_ERRORS


def policy() -> RetryPolicy:
    """WEBHOOK_RETRY_SCHEDULE_SECONDS, jittered, a `Retry-After` honoured up to its cap."""
    return RetryPolicy(
        settings.WEBHOOK_RETRY_SCHEDULE_SECONDS,
        retry_after_cap=settings.WEBHOOK_MAX_RETRY_AFTER_SECONDS,
        jitter=settings.WEBHOOK_RETRY_JITTER,
    )


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now).total_seconds())
