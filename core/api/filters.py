"""Query-string filters for any list: a bad parameter is a 400 naming it; OpenAPI parameters for views
that are not generic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import django_filters
from django.db.models import Model, QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from core.api.pagination import PAGE_PARAMETERS

M = TypeVar("M", bound=Model)
# Accepted by every list besides its filters: the page, and DRF's format override.
ALWAYS_ACCEPTED = ("limit", "offset", "format")


class StatusInFilter(django_filters.BaseInFilter, django_filters.ChoiceFilter):
    pass


def filter_or_400(
    filterset_class: type[django_filters.FilterSet], params: Mapping[str, Any], queryset: QuerySet[M]
) -> QuerySet[M]:
    """`queryset` narrowed by the query parameters; a bad one is a 400 naming it, and so is one the
    list does not know (a misspelt filter silently returning everything is worse than an error)."""
    known = {*filterset_class.base_filters, *ALWAYS_ACCEPTED}
    unknown = sorted(name for name in params if name not in known)
    if unknown:
        raise serializers.ValidationError(
            {
                name: [ErrorDetail(f"unknown query parameter; known: {', '.join(sorted(known))}", "unknown")]
                for name in unknown
            }
        )
    filtered = filterset_class(params, queryset=queryset)
    if not filtered.is_valid():
        raise serializers.ValidationError(filtered.errors)
    narrowed: QuerySet[M] = filtered.qs
    return narrowed


def filter_parameters(filterset_class: type[django_filters.FilterSet], paged: bool = True) -> list[Any]:
    """The filters (and `limit`/`offset`) as OpenAPI query parameters, for views that are not generic."""
    parameters = [
        OpenApiParameter(name, str, description=str(field.extra.get("help_text") or field.label or ""))
        for name, field in filterset_class.base_filters.items()
    ]
    if paged:
        return [*parameters, *PAGE_PARAMETERS]
    return parameters
