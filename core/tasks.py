"""Celery tasks that must not lose their message: retried for as long as Postgres is unreachable.

A failed task's message is acknowledged and gone, and a worker's report is the only record of its
work, so these tasks retry with backoff instead of failing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

DATABASE_UNREACHABLE = (OperationalError, InterfaceError)


def durable_task(name: str) -> Callable[[Callable[..., Any]], Any]:
    """A task applying a worker's message; retried for as long as the database is unreachable."""
    return shared_task(
        name=name,
        autoretry_for=DATABASE_UNREACHABLE,
        max_retries=None,
        retry_backoff=1,
        retry_backoff_max=settings.REPORT_RETRY_BACKOFF_MAX_SECONDS,
        retry_jitter=True,
    )
