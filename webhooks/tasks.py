"""The delivery worker's one task (queue `webhooks`, its own worker processes)."""

from __future__ import annotations

from celery import shared_task
from django.db import close_old_connections

from webhooks import delivery


@shared_task(name=delivery.DELIVER_TASK, ignore_result=True)
def deliver(delivery_id: int, dispatch_token: str) -> None:
    close_old_connections()  # the connection is reused across tasks: check it (and recycle when old)
    delivery.attempt(delivery_id, dispatch_token)
