"""Query-string filters for the job list."""

from __future__ import annotations

import django_filters

from core.api.filters import StatusInFilter
from jobqueue.models import Job, JobStatus


class JobFilter(django_filters.FilterSet):
    status = StatusInFilter(choices=JobStatus.choices, help_text="one status or several, comma-separated")
    type = django_filters.CharFilter()
    job_type = django_filters.CharFilter(field_name="type", help_text="alias of type (the replaced system's)")
    created_by = django_filters.CharFilter()
    workflow_id = django_filters.CharFilter()
    customer_id = django_filters.CharFilter()
    ordering = django_filters.OrderingFilter(
        fields=("created_at", "updated_at", "completed_at", "priority", "status", "type"),
    )

    class Meta:
        model = Job
        fields = ["status", "type", "created_by", "workflow_id", "customer_id"]
