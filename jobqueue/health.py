"""Dependency checks for the health endpoints."""

from __future__ import annotations

import time
from typing import Any

from django.db import connection

from jobqueue.broker import redis_client
from machines.models import Worker


def _timed(check) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = check()
    except Exception as exc:  # noqa: BLE001  (a health check reports any failure)
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2), **(detail or {})}


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _broker() -> None:
    redis_client().ping()


def _workers() -> dict[str, int]:
    return {"seen": Worker.objects.count(), "live": Worker.objects.live().count()}


def system_health() -> dict[str, Any]:
    checks = {"database": _timed(_database), "broker": _timed(_broker)}
    workers = _timed(_workers) if checks["database"]["ok"] else {"ok": False, "error": "database unavailable"}
    return {"ready": all(c["ok"] for c in checks.values()), "checks": checks, "workers": workers}
