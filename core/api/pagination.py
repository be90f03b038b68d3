"""`limit`/`offset` pages in the seeds' shape: `{"success", <items>, "pagination": {...}}`.

A page costs its rows plus one, and a count that stops at API_COUNT_MAX: `total` is exact up to
there (`total_exact`), and `has_more` is always exact (the extra row). Counting every row of a table
of millions on every list was the lists' largest cost."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.db import BIGINT_MAX
from wire.json_types import JsonObject


class PageSerializer(serializers.Serializer[Any]):
    limit = serializers.IntegerField(
        min_value=1, max_value=settings.API_PAGE_SIZE_MAX, default=settings.API_PAGE_SIZE_DEFAULT
    )
    offset = serializers.IntegerField(min_value=0, max_value=BIGINT_MAX, default=0)


#: `limit` and `offset` as OpenAPI query parameters, with their bounds (for `extend_schema`).
PAGE_PARAMETERS: list[Any] = [PageSerializer]


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int


def read_page(request: Request) -> Page:
    """The requested page; a bad `limit` or `offset` is a 400."""
    page = PageSerializer(data=request.query_params)
    page.is_valid(raise_exception=True)
    return Page(page.validated_data["limit"], page.validated_data["offset"])


def page_response(
    key: str, queryset: QuerySet[Any], serializer_class: type[serializers.BaseSerializer[Any]], page: Page
) -> Response:
    return paged(key, queryset, lambda rows: serializer_class(rows, many=True).data, page)


def paged(key: str, queryset: QuerySet[Any], render: Callable[[list[Any]], Any], page: Page) -> Response:
    """`page` of the (ordered) `queryset`, its rows shown by `render`."""
    return Response({"success": True, **page_body(key, queryset, render, page)})


def page_body(
    key: str, queryset: QuerySet[Any], render: Callable[[list[Any]], Any], page: Page
) -> JsonObject:
    """`{key: [rows...], "pagination": {...}}`, for an answer that carries more beside its page."""
    rows = list(queryset[page.offset : page.offset + page.limit + 1])
    counted = queryset.order_by()[: settings.API_COUNT_MAX + 1].count()  # any rows: no sort
    return {
        key: render(rows[: page.limit]),
        "pagination": {
            "limit": page.limit,
            "offset": page.offset,
            "total": min(counted, settings.API_COUNT_MAX),
            "total_exact": counted <= settings.API_COUNT_MAX,
            "has_more": len(rows) > page.limit,
        },
    }
