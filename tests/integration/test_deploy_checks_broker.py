"""`check --deploy` reads the broker's own memory bound (a real Redis of the test's own)."""

from __future__ import annotations

import pytest

from core.checks import check_broker_bounds
from core.redis import redis_client


@pytest.fixture
def broker_config(private_broker):
    return redis_client()


def test_a_bounded_broker_that_never_evicts_passes(broker_config):
    broker_config.config_set("maxmemory", "1gb")
    broker_config.config_set("maxmemory-policy", "noeviction")
    assert check_broker_bounds() == []


@pytest.mark.parametrize(("maxmemory", "policy"), [("0", "noeviction"), ("1gb", "allkeys-lru")])
def test_an_unbounded_or_evicting_broker_is_a_warning(broker_config, maxmemory, policy):
    broker_config.config_set("maxmemory", maxmemory)
    broker_config.config_set("maxmemory-policy", policy)
    assert [m.id for m in check_broker_bounds()] == ["core.W008"]
