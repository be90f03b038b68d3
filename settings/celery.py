"""The control plane's Celery app (API, control worker, beat, Flower)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from celery import Celery
from celery.signals import beat_init, task_prerun, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.base")

app = Celery("jobqueue")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect(weak=False)
@beat_init.connect(weak=False)
def _limit_database_sessions(**_kwargs: object) -> None:
    from core.db import limit_sessions

    limit_sessions("control")


@task_prerun.connect(weak=False)
def _check_database_connection(**_kwargs: object) -> None:
    """Workers keep their database connection across tasks (CELERY_DB_REUSE_MAX): before each task,
    drop it if it broke (a Postgres restart) or grew old, and health-check it on next use, as Django
    does around every request."""
    from django.db import close_old_connections

    close_old_connections()


def worker_argv(queue: str, name: str, concurrency: int, log_level: str = "INFO", *extra: str) -> list[str]:
    """A control-plane Celery worker on one queue, as every launcher (runstack, tests, benchmarks)
    starts it: no gossip or mingle (a fleet of workers would flood each other at start)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "settings.celery",
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
