"""How a webhook delivery worker is started (by `runstack`, the tests and the benchmark alike)."""

from __future__ import annotations

import sys

from django.conf import settings


def delivery_worker_argv(name: str, concurrency: int | None = None, log_level: str = "INFO") -> list[str]:
    """A Celery worker on the `webhooks` queue only. Deliveries wait on receivers, not the CPU,
    so one process runs many in threads; a slow receiver ties up a thread here, never a job."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "settings.celery",
        "worker",
        "-Q",
        settings.WEBHOOK_QUEUE,
        "-n",
        f"{name}@%h",
        "--pool",
        "threads",
        "-c",
        str(concurrency or settings.WEBHOOK_DELIVERY_CONCURRENCY),
        "--without-gossip",
        "--without-mingle",
        "-l",
        log_level,
    ]
