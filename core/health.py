"""Dependency checks for the health endpoints: a ping of the database and one of the broker, and
nothing else. The endpoints are unauthenticated and polled often (load balancers, orchestrators), so
they cost no query beyond the pings; the fleet's counts are the operators' (`/api/workers`, metrics)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.db import connection

from core.redis import redis_client
from wire.json_types import JsonObject

log = logging.getLogger(__name__)


def _timed(check: Callable[[], JsonObject | None]) -> JsonObject:
    started = time.perf_counter()
    try:
        detail = check()
    except Exception as exc:  # noqa: BLE001  (a health check reports any failure)
        # The exception's text can name hosts, ports and users: it goes to the log, not to the caller.
        log.warning("health check %s failed: %s", check.__name__, exc)
        return {"ok": False, "error": "unavailable", "error_class": type(exc).__name__}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2), **(detail or {})}


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _broker() -> None:
    redis_client().ping()


def system_health() -> JsonObject:
    """Ready when the database and the broker answer."""
    checks = {"database": _timed(_database), "broker": _timed(_broker)}
    return {"ready": all(c["ok"] for c in checks.values()), "checks": checks}
