"""Histogram buckets as the counters store them: each observation in the one bucket it falls in."""

from __future__ import annotations

import math

import pytest

from counters.definitions import Metric

LATENCY = Metric("unit_test_latency_seconds", "A histogram for this test.", (), (0.1, 1.0, 10.0))


@pytest.mark.parametrize(
    ("value", "bucket"),
    [
        (0.0, "0.1"),
        (0.1, "0.1"),
        (0.2, "1.0"),
        (1.0, "1.0"),
        (9.9, "10.0"),
        (10.5, "+Inf"),
        (math.inf, "+Inf"),
    ],
)
def test_an_observation_falls_in_the_smallest_bucket_not_below_it(value, bucket):
    assert LATENCY.bucket_of(value) == bucket


def test_bucket_labels_end_with_infinity():
    assert LATENCY.bucket_labels == ["0.1", "1.0", "10.0", "+Inf"]


def test_a_metric_cannot_be_declared_twice_differently():
    with pytest.raises(ValueError, match="declared twice"):
        Metric("unit_test_latency_seconds", "Another help.", (), (0.1,))
