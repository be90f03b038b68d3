"""The delivery worker's one task (queue `webhooks`, its own worker processes)."""

from __future__ import annotations

from celery import shared_task

from webhooks import delivery
from webhooks.lease import DELIVER_TASK


@shared_task(name=DELIVER_TASK, ignore_result=True)
def deliver(delivery_id: int, dispatch_token: str) -> None:
    delivery.attempt(delivery_id, dispatch_token)
