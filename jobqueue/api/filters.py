"""Query-string filters for the job list."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from jobqueue.models import Job, JobStatus


class StatusInFilter(django_filters.BaseInFilter, django_filters.ChoiceFilter):
    pass


class JobFilter(django_filters.FilterSet):
    status = StatusInFilter(choices=JobStatus.choices, help_text="one status or several, comma-separated")
    type = django_filters.CharFilter()
    created_by = django_filters.CharFilter()
    workflow_id = django_filters.CharFilter()
    customer_id = django_filters.CharFilter()
    ordering = django_filters.OrderingFilter(
        fields=("created_at", "updated_at", "completed_at", "priority", "status", "type"),
    )

    class Meta:
        model = Job
        fields = ["status", "type", "created_by", "workflow_id", "customer_id"]


def filter_or_400(filterset_class: type[django_filters.FilterSet], params, queryset: QuerySet) -> QuerySet:
    """`queryset` narrowed by the query parameters; a bad one is a 400 naming it."""
    filtered = filterset_class(params, queryset=queryset)
    if not filtered.is_valid():
        raise serializers.ValidationError(filtered.errors)
    return filtered.qs


def filter_parameters(
    filterset_class: type[django_filters.FilterSet], paged: bool = True
) -> list[OpenApiParameter]:
    """The filters (and `limit`/`offset`) as OpenAPI query parameters, for views that are not generic."""
    parameters = [
        OpenApiParameter(name, str, description=str(field.extra.get("help_text") or field.label or ""))
        for name, field in filterset_class.base_filters.items()
    ]
    if paged:
        parameters += [OpenApiParameter("limit", int), OpenApiParameter("offset", int)]
    return parameters
