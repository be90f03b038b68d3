"""URL path converters: `<row_id:...>` is a row's integer id, at most 18 digits so that it always
fits Postgres' bigint (a longer one matches no URL: a 404, never a database error)."""

from __future__ import annotations

from django.urls import register_converter


class RowIdConverter:
    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(RowIdConverter, "row_id")
