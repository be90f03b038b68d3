"""Creating something at most once per (tenant, idempotency key)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import IntegrityError, models, transaction

M = TypeVar("M", bound=models.Model)


def create_once(
    model: type[M], tenant_id: int, idempotency_key: str | None, create: Callable[[], M]
) -> tuple[M, bool]:
    """Run `create` in a transaction, unless a `model` row with this key already exists; when a
    concurrent request with the same key wins the race (unique constraint), return its row.

    Returns (row, created)."""

    def existing() -> M | None:
        if not idempotency_key:
            return None
        return model._default_manager.filter(tenant_id=tenant_id, idempotency_key=idempotency_key).first()

    found = existing()
    if found is not None:
        return found, False
    try:
        with transaction.atomic():
            return create(), True
    except IntegrityError:
        found = existing()
        if found is None:
            raise
        return found, False
