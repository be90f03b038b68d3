"""Dependency checks for the health endpoints: the database and the broker, plus whatever the URL
conf adds (the fleet's worker counts)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.db import connection

from core.redis import redis_client

log = logging.getLogger(__name__)


def _timed(check: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
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


def system_health(**database_reports: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Ready when the database and the broker answer. Each of `database_reports` (name: a read of the
    database) is added under its name when the database is up; none decides readiness."""
    checks = {"database": _timed(_database), "broker": _timed(_broker)}
    report: dict[str, Any] = {"ready": all(c["ok"] for c in checks.values()), "checks": checks}
    for name, read in database_reports.items():
        report[name] = (
            _timed(read) if checks["database"]["ok"] else {"ok": False, "error": "database unavailable"}
        )
    return report
