"""How a webhook delivery worker is started (by `runstack`, the tests and the benchmark alike)."""

from __future__ import annotations

from django.conf import settings

from core.celery_app import worker_argv


def delivery_worker_argv(name: str, concurrency: int | None = None, log_level: str = "INFO") -> list[str]:
    """A Celery worker on the `webhooks` queue only. Deliveries wait on receivers, not the CPU,
    so one process runs many in threads; a slow receiver ties up a thread here, never a job."""
    return worker_argv(
        settings.WEBHOOK_QUEUE,
        name,
        concurrency or settings.WEBHOOK_DELIVERY_CONCURRENCY,
        log_level,
        "--pool",
        "threads",
    )
