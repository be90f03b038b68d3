"""Database expressions every app may use."""

from __future__ import annotations

from django.db import models


class CurrentTransactionId(models.Func):
    """The writing transaction's id, as a bigint. The event log's consumers only read events of
    transactions older than every one still running, so an event can never commit behind a cursor."""

    template = "(pg_current_xact_id()::text::bigint)"
    output_field = models.BigIntegerField()
