"""Database expressions and statements every app may use."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeAlias, TypeVar
from uuid import UUID

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, models, router
from django.db.backends.utils import CursorWrapper
from django.db.models import QuerySet
from django.db.models.expressions import DatabaseDefault
from django.utils import timezone

from wire.json_types import JsonValue

M = TypeVar("M", bound=models.Model)
# A row's values by field or column name: Python values, or expressions the database computes.
FieldValues: TypeAlias = dict[str, Any]
# The values a raw statement binds to its placeholders.
SqlParameters: TypeAlias = list[Any]

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
    rows: list[FieldValues] = []
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


def _json_value(value: JsonValue) -> str:
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()  # to the microsecond (DjangoJSONEncoder keeps milliseconds)
    raise TypeError(f"{type(value).__name__} cannot be written as JSON")


def prepared_cursor(alias: str = DEFAULT_DB_ALIAS) -> CursorWrapper:
    """A cursor whose statements Postgres prepares on their first run in a session and then runs
    without planning them again (a generic plan, once Postgres finds it no worse than a fresh one):
    for the hot statements that run thousands of times a minute. The offer of work to a worker
    costs ~5 ms planned each time against 50 shapes, ~2 ms prepared.

    A statement run through it must name its result columns (`columns_of`, not `*`): a prepared
    statement whose result type a migration changes fails until its session ends."""
    connection = connections[alias]
    if not settings.DATABASE_PREPARED_STATEMENTS:
        return connection.cursor()
    connection.ensure_connection()
    # Wrapped as Django wraps its own cursors: errors translated, queries logged and counted.
    return connection._prepare_cursor(psycopg.Cursor(connection.connection))  # type: ignore[attr-defined,no-any-return]


def columns_of(model: type[models.Model], alias: str) -> str:
    """Every column of the model's table, qualified by `alias`: a statement's fixed result list."""
    return ", ".join(f'{alias}."{field.column}"' for field in model._meta.concrete_fields)


def fetch_models(model: type[M], cursor: CursorWrapper) -> list[M]:
    """The rows of an executed cursor as `model` instances, as `Model.objects.raw` builds them:
    columns matched to fields by name, each value converted as the ORM converts it, and the
    columns that are no field's set as attributes."""
    connection = cursor.db
    names = [column.name for column in cursor.description]
    fields = {field.column: field for field in model._meta.concrete_fields}
    converters = [_converters(fields.get(name), model, connection) for name in names]
    attnames = [f.attname for f in model._meta.concrete_fields]
    instances = []
    for row in cursor.fetchall():
        converted = (_converted(value, each, connection) for value, each in zip(row, converters, strict=True))
        values = dict(zip(names, converted, strict=True))
        instance = model.from_db(connection.alias, attnames, [values.pop(f.column) for f in fields.values()])
        for name, value in values.items():
            setattr(instance, name, value)
        instances.append(instance)
    return instances


def _converters(
    field: models.Field[Any, Any] | None, model: type[models.Model], connection: Any
) -> list[Any]:
    if field is None:
        return []
    column = field.get_col(model._meta.db_table)
    return [(converter, column) for converter in field.get_db_converters(connection)]


def _converted(value: Any, converters: Iterable[Any], connection: Any) -> Any:
    for converter, column in converters:
        value = converter(value, column, connection)
    return value


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
