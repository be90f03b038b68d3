"""What a counter or histogram is: its name, help, label names and buckets. Each owner declares its
own (the job metrics in `metrics/folding.py`, the lanes' in `dispatch/`, the webhooks' in `webhooks/`);
every declaration lands in `DECLARED`, which `/metrics` reads."""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass

DECLARED: dict[str, Metric] = {}

# Seconds: from a few milliseconds (dispatch, lane batches) to hours (a long GPU job).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
JOB_SECONDS_BUCKETS = (
    0.1,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    14400.0,
)


@dataclass(frozen=True)
class Metric:
    """A counter, or a histogram when it has buckets. Label values must come from bounded sets."""

    name: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.name in DECLARED and DECLARED[self.name] != self:
            raise ValueError(f"metric {self.name} is declared twice, differently")
        DECLARED[self.name] = self

    @property
    def is_histogram(self) -> bool:
        return bool(self.buckets)

    @functools.cached_property
    def bucket_labels(self) -> list[str]:
        """Its buckets' `le` labels, smallest first, `+Inf` last."""
        return [*(repr(float(bound)) for bound in self.buckets), "+Inf"]

    def bucket_of(self, value: float) -> str:
        """The `le` label of the one bucket a value falls in (the smallest bound not below it)."""
        return self.bucket_labels[bisect.bisect_left(self.buckets, value)]
