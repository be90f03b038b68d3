"""When an outbound message (a webhook delivery, an EmProps notification) is tried again: the one rule
every transport follows.

A schedule lists the wait before each retry; the first attempt is made at once and is not in it, so a
schedule of N delays makes at most N + 1 attempts. A receiver's `Retry-After` can lengthen a wait (up
to a cap), never shorten it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """A transport's schedule, its cap on a receiver's `Retry-After`, and the fraction by which its
    waits are spread (+/-)."""

    schedule: Sequence[float]
    retry_after_cap: float
    jitter: float = 0.0

    def next_delay(self, attempts_made: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before the next attempt, after `attempts_made` (1 or more) on this
        schedule; None once the schedule is spent."""
        if attempts_made < 1 or attempts_made > len(self.schedule):
            return None
        delay = self.schedule[attempts_made - 1]
        if self.jitter:
            delay *= 1 + random.uniform(-self.jitter, self.jitter)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_after_cap))
        return delay


# A message sent once (a webhook endpoint's test message): its first failure is its last.
ONCE = RetryPolicy(schedule=(), retry_after_cap=0.0)
