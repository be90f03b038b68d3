"""How long a job waits before its next attempt: exponential backoff with full jitter."""

from __future__ import annotations

import random

from django.conf import settings


def retry_delay_seconds(retry_number: int) -> float:
    """Delay before retry number `retry_number` (1 for the first retry).

    Full jitter (uniform between 0 and the exponential ceiling) spreads out jobs that failed together,
    for example when one engine went down, so they do not come back in a thundering herd.
    """
    ceiling = min(
        settings.RETRY_BACKOFF_CAP_SECONDS,
        settings.RETRY_BACKOFF_BASE_SECONDS * settings.RETRY_BACKOFF_FACTOR ** max(0, retry_number - 1),
    )
    return random.uniform(0, ceiling)
