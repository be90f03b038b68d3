"""`limit`/`offset` pages in the seeds' shape: `{"success", <items>, "pagination": {...}}`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.db import BIGINT_MAX


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
    total = queryset.count()
    items = queryset[page.offset : page.offset + page.limit]
    return Response(
        {
            "success": True,
            key: serializer_class(items, many=True).data,
            "pagination": {
                "limit": page.limit,
                "offset": page.offset,
                "total": total,
                "has_more": page.offset + page.limit < total,
            },
        }
    )
