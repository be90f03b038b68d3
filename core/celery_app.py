"""The control plane's Celery app, and how every launcher (runstack, tests, benchmarks) starts its
processes. The apps send tasks through it; `settings/celery.py` is the entry point Celery's command
line loads (`-A settings.celery`), which adds the worker processes' signal handlers."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.base")

app = Celery("jobqueue")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

CELERY_APP_MODULE = "settings.celery"


def worker_argv(queue: str, name: str, concurrency: int, log_level: str = "INFO", *extra: str) -> list[str]:
    """A control-plane Celery worker on one queue, as every launcher (runstack, tests, benchmarks)
    starts it: no gossip or mingle (a fleet of workers would flood each other at start)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        CELERY_APP_MODULE,
        "worker",
        "-Q",
        queue,
        "-n",
        f"{name}@%h",
        "-c",
        str(concurrency),
        "--without-gossip",
        "--without-mingle",
        *extra,
        "-l",
        log_level,
    ]


def lane_consumer_argv(lanes: Sequence[str]) -> list[str]:
    """A batch consumer of the report and/or fleet lanes (`manage.py consume_lanes`); it logs at
    LOG_LEVEL."""
    manage = Path(__file__).resolve().parent.parent / "manage.py"
    return [sys.executable, str(manage), "consume_lanes", *lanes]


def lane_argv(lane: str, name: str, log_level: str = "INFO", *extra: str) -> list[str]:
    """One consumer process of a control-plane lane, as every launcher starts it: batched lanes
    through `consume_lanes`, the others as a Celery worker of one process."""
    from django.conf import settings

    if lane in settings.BATCHED_LANES:
        return lane_consumer_argv([lane])
    return worker_argv(lane, name, 1, log_level, *extra)
