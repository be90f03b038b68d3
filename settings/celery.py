"""The entry point Celery's command line loads (`celery -A settings.celery worker|beat|flower`): the
control plane's app (`core/celery_app.py`) with its worker processes' signal handlers."""

from __future__ import annotations

from celery.signals import beat_init, task_prerun, worker_init

from core.celery_app import app

__all__ = ["app"]


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
