"""Database expressions and statements every app may use."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from django.conf import settings
from django.db import connections, models, router
from django.db.models import QuerySet
from django.db.models.expressions import DatabaseDefault
from django.utils import timezone

M = TypeVar("M", bound=models.Model)

#: The largest values Postgres' integer columns hold (`integer`, `bigint`): an API field stored in one,
#: or passed to one (a page's OFFSET), is bounded by it, so a larger number is a 400, not a 500.
INT_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1


class CurrentTransactionId(models.Func):
    """The writing transaction's id, as a bigint. The event log's consumers only read events of
    transactions older than every one still running, so an event can never commit behind a cursor."""

    template = "(pg_current_xact_id()::text::bigint)"
    output_field = models.BigIntegerField()


def insert_many(model: type[M], objects: Sequence[M]) -> None:
    """INSERT `objects` in one statement whose one parameter is a JSON array of the rows, which
    Postgres turns back into rows (`jsonb_populate_recordset`): what `bulk_create` does, without a
    placeholder per value. (psycopg rewrites a statement of 60,000 placeholders on the client, and
    Django compiles each of them: three quarters of a 1,000-job batch submit went there.)

    Columns the objects leave to the database's default (`db_default`) are left to it and read back
    onto the objects, as `bulk_create` does; every object must leave the same ones."""
    if not objects:
        return
    connection = connections[router.db_for_write(model)]
    fields = [f for f in model._meta.concrete_fields if not f.generated]  # the database computes those
    # Only these can be left to the database: a column with a db_default, or an automatic key.
    may_default = [f for f in fields if f.has_db_default() or f.primary_key]
    defaulted = [f for f in may_default if _leaves_to_database(objects[0], f)]
    written = [(f, _column(f)) for f in fields if f not in defaulted]
    rows: list[dict[str, Any]] = []
    for obj in objects:
        if any(_leaves_to_database(obj, f) != (f in defaulted) for f in may_default):
            raise ValueError(f"every {model.__name__} must leave the same columns to the database")
        rows.append({column: f.pre_save(obj, add=True) for f, column in written})
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(column) for _, column in written)
    returning = ", ".join(quote(_column(f)) for f in defaulted) or "1"
    sql = (
        f"INSERT INTO {table} ({columns}) SELECT {columns} "
        f"FROM jsonb_populate_recordset(NULL::{table}, %s::jsonb) RETURNING {returning}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [json.dumps(rows, default=_json_value)])
        returned = cursor.fetchall()
    # Postgres returns the rows in the order the SELECT produced them, the array's (bulk_create
    # relies on the same for its RETURNING).
    for obj, values in zip(objects, returned, strict=True):
        for field, value in zip(defaulted, values, strict=False):
            setattr(obj, field.attname, value)
        obj._state.adding = False
        obj._state.db = connection.alias


def _column(field: models.Field[Any, Any]) -> str:
    column = field.get_attname_column()[1]
    assert column is not None  # concrete fields have one
    return column


def _leaves_to_database(obj: models.Model, field: models.Field[Any, Any]) -> bool:
    value = getattr(obj, field.attname)
    return isinstance(value, DatabaseDefault) or (value is None and field.primary_key)


def _json_value(value: Any) -> str:
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()  # to the microsecond (DjangoJSONEncoder keeps milliseconds)
    raise TypeError(f"{type(value).__name__} cannot be written as JSON")


def limit_sessions(kind: str) -> None:
    """From the next connection on, this process's database sessions get the statement and lock
    timeouts of its kind (settings.DATABASE_TIMEOUTS_MS); called by the long-running entry points
    only, so migrations and one-off commands keep none."""
    statement_ms, lock_ms = settings.DATABASE_TIMEOUTS_MS[kind]
    for alias in connections:
        connection = connections[alias]
        connection.settings_dict.setdefault("OPTIONS", {})["options"] = (
            f"-c statement_timeout={statement_ms} -c lock_timeout={lock_ms}"
        )
        connection.close()


def seconds_until_earliest(rows: QuerySet[Any], field: str, at_most: float) -> float:
    """Seconds until the earliest `field` (a datetime) of these rows, 0 when it has passed, at most
    `at_most`: how long a pump may sleep before something is due."""
    earliest: datetime | None = rows.order_by(field).values_list(field, flat=True).first()
    if earliest is None:
        return at_most
    return min(at_most, max(0.0, (earliest - timezone.now()).total_seconds()))
