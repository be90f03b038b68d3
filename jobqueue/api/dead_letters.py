"""Dead-letter queue API: /api/dead-letters (list, detail, requeue one or many, discard)."""

from __future__ import annotations

import django_filters
from django.conf import settings
from django.db.models import QuerySet
from django.http import QueryDict
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import api_key_of
from accounts.scoping import owned, readable, recoverable
from core.api.filters import filter_or_400, filter_parameters
from core.api.pagination import page_response, read_page
from core.api.schema import envelope, page
from core.api.serializers import StrictSerializer
from jobqueue import dead_letters
from jobqueue.api.serializers import JobDetailSerializer, JobSerializer
from jobqueue.models import DeadLetterJob, DeadLetterQuerySet, DeadLetterReason

STATES = ("open", "requeued", "all")


class DeadLetterFilter(django_filters.FilterSet):
    type = django_filters.CharFilter(field_name="job__type")
    reason = django_filters.ChoiceFilter(choices=DeadLetterReason.choices)
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    job_id = django_filters.UUIDFilter()
    workflow_id = django_filters.CharFilter(field_name="job__workflow_id")
    state = django_filters.ChoiceFilter(
        choices=[(s, s) for s in STATES], method="filter_state", help_text="open (default), requeued or all"
    )

    class Meta:
        model = DeadLetterJob
        fields = ["type", "reason", "created_after", "created_before", "job_id", "workflow_id", "state"]

    def filter_queryset(self, queryset: DeadLetterQuerySet) -> QuerySet[DeadLetterJob]:
        if not self.form.cleaned_data.get("state"):
            queryset = queryset.open()
        filtered: QuerySet[DeadLetterJob] = super().filter_queryset(queryset)
        return filtered

    def filter_state(self, queryset: DeadLetterQuerySet, _name: str, value: str) -> DeadLetterQuerySet:
        if value == "open":
            return queryset.open()
        if value == "requeued":
            return queryset.requeued()
        return queryset


def filtered_dead_letters(request: Request, params: QueryDict) -> QuerySet[DeadLetterJob]:
    """The dead letters the caller may reach (its tenant's; an operator's: every tenant's), filtered."""
    queryset = _reachable(request).select_related("job").order_by("-created_at", "-id")
    return filter_or_400(DeadLetterFilter, params, queryset)


def _reachable(request: Request) -> QuerySet[DeadLetterJob]:
    return readable(DeadLetterJob.objects.all(), api_key_of(request), tenant_field="job__tenant")


def _requeueable(request: Request) -> QuerySet[DeadLetterJob]:
    return recoverable(DeadLetterJob.objects.all(), api_key_of(request), tenant_field="job__tenant")


def _discardable(request: Request) -> QuerySet[DeadLetterJob]:
    """The caller's own tenant's only: discarding drops the record of another tenant's failure."""
    return owned(DeadLetterJob.objects.all(), api_key_of(request), tenant_field="job__tenant")


class DeadLetterSerializer(serializers.ModelSerializer[DeadLetterJob]):
    job_id = serializers.UUIDField(read_only=True)
    type = serializers.CharField(source="job.type", read_only=True)
    status = serializers.CharField(source="job.status", read_only=True)

    class Meta:
        model = DeadLetterJob
        fields = [
            "id",
            "job_id",
            "type",
            "status",
            "reason",
            "last_error",
            "attempts",
            "created_at",
            "requeued_at",
            "requeued_by",
        ]


class DeadLetterDetailSerializer(DeadLetterSerializer):
    job = JobDetailSerializer(read_only=True)

    class Meta(DeadLetterSerializer.Meta):
        fields = [*DeadLetterSerializer.Meta.fields, "job"]


class BulkFilterSerializer(StrictSerializer):
    type = serializers.CharField(required=False, max_length=100)
    reason = serializers.ChoiceField(choices=DeadLetterReason.choices, required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)
    workflow_id = serializers.CharField(required=False, max_length=100)


class BulkRequeueSerializer(StrictSerializer):
    filter = BulkFilterSerializer(help_text="Which open dead letters; {} means all of them.")
    limit = serializers.IntegerField(
        min_value=1, max_value=settings.DEAD_LETTER_REQUEUE_MAX, default=settings.DEAD_LETTER_REQUEUE_MAX
    )


def _actor(request: Request) -> str:
    return f"api:{api_key_of(request).name}"


class DeadLetterCollectionView(APIView):
    @extend_schema(
        operation_id="api_dead_letters_list",
        parameters=filter_parameters(DeadLetterFilter),
        responses=page("DeadLetterPage", "dead_letters", DeadLetterSerializer),
    )
    def get(self, request: Request) -> Response:
        page = read_page(request)
        return page_response(
            "dead_letters", filtered_dead_letters(request, request.query_params), DeadLetterSerializer, page
        )


class DeadLetterDetailView(APIView):
    @extend_schema(responses=envelope("DeadLetterEnvelope", dead_letter=DeadLetterDetailSerializer()))
    def get(self, request: Request, dead_letter_id: int) -> Response:
        dead_letter = get_object_or_404(
            _reachable(request).select_related("job").prefetch_related("job__executions"), pk=dead_letter_id
        )
        return Response({"success": True, "dead_letter": DeadLetterDetailSerializer(dead_letter).data})

    @extend_schema(responses={204: None})
    def delete(self, request: Request, dead_letter_id: int) -> Response:
        get_object_or_404(_discardable(request), pk=dead_letter_id)
        dead_letters.discard(dead_letter_id, discarded_by=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeadLetterRequeueView(APIView):
    @extend_schema(
        request=None,
        responses=envelope("DeadLetterRequeued", job_id=serializers.UUIDField(), job=JobSerializer()),
    )
    def post(self, request: Request, dead_letter_id: int) -> Response:
        get_object_or_404(_requeueable(request), pk=dead_letter_id)
        job = dead_letters.requeue(dead_letter_id, requeued_by=_actor(request))
        return Response({"success": True, "job_id": str(job.pk), "job": JobSerializer(job).data})


class DeadLetterBulkRequeueView(APIView):
    @extend_schema(
        operation_id="dead_letters_requeue_bulk",
        request=BulkRequeueSerializer,
        responses=envelope(
            "DeadLettersRequeued",
            matched=serializers.IntegerField(),
            requeued=serializers.IntegerField(),
            remaining=serializers.IntegerField(),
        ),
    )
    def post(self, request: Request) -> Response:
        body = BulkRequeueSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        matching = filtered_dead_letters(request, body.validated_data["filter"])
        outcome = dead_letters.requeue_many(
            matching, body.validated_data["limit"], requeued_by=_actor(request)
        )
        return Response(
            {
                "success": True,
                "matched": outcome.matched,
                "requeued": outcome.requeued,
                "remaining": outcome.remaining,
            }
        )
