"""When an outbound message (a webhook delivery, an EmProps notification) is tried again: the one rule
both senders follow.

A schedule lists the wait before each retry; the first attempt is made at once and is not in it, so a
schedule of N delays makes at most N + 1 attempts. A receiver's `Retry-After` can lengthen a wait (up
to a cap), never shorten it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def next_delay(
    schedule: Sequence[float],
    attempts_made: int,
    *,
    retry_after: float | None = None,
    retry_after_cap: float,
    jitter: float = 0.0,
) -> float | None:
    """Seconds to wait before the next attempt, after `attempts_made` (1 or more) on this schedule;
    None once the schedule is spent. `jitter` spreads the wait by up to +/- that fraction of it."""
    if attempts_made < 1 or attempts_made > len(schedule):
        return None
    delay = schedule[attempts_made - 1]
    if jitter:
        delay *= 1 + random.uniform(-jitter, jitter)
    if retry_after is not None:
        delay = max(delay, min(retry_after, retry_after_cap))
    return delay
