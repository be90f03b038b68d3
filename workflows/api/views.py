"""Workflows API views: parse, call one domain function, shape the response."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import api_key_of
from accounts.models import ApiKey
from accounts.scoping import owned, readable
from core.api.filters import StatusInFilter, filter_or_400, filter_parameters
from core.api.middleware import correlation_id
from core.api.pagination import page_response, read_page
from core.api.schema import envelope, page
from jobqueue.api.views import StatsQuerySerializer, StatsView
from jobqueue.models import JobDependency
from jobqueue.quotas import admit_jobs
from wire.json_types import JsonObject
from workflows.api.serializers import WorkflowCancelSerializer, WorkflowSerializer, WorkflowSubmitSerializer
from workflows.cancellation import cancel_workflow
from workflows.creation import create_workflow
from workflows.lookup import seen_by
from workflows.models import Workflow, WorkflowStatus
from workflows.settle import workflow_progress
from workflows.stats import workflow_stats
from workflows.step_details import step_details


class WorkflowFilter(django_filters.FilterSet):
    status = StatusInFilter(
        choices=WorkflowStatus.choices, help_text="one status or several, comma-separated"
    )
    mode = django_filters.CharFilter()
    source = django_filters.CharFilter()
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = Workflow
        fields = ["status", "mode", "source", "created_after"]


WORKFLOW_SUBMITTED = envelope(
    "WorkflowSubmitted",
    workflow_id=serializers.CharField(),
    job_ids=serializers.ListField(child=serializers.UUIDField()),
    status=serializers.CharField(),
    created=serializers.BooleanField(help_text="False: already submitted with this idempotency key."),
)
WORKFLOW_CANCELLED = envelope(
    "WorkflowCancelled",
    workflow_id=serializers.CharField(),
    status=serializers.CharField(),
    workflow=WorkflowSerializer(),
)


class WorkflowCollectionView(APIView):
    @extend_schema(
        request=WorkflowSubmitSerializer,
        responses={201: WORKFLOW_SUBMITTED, 200: WORKFLOW_SUBMITTED},
    )
    def post(self, request: Request) -> Response:
        submission = WorkflowSubmitSerializer(data=request.data)
        submission.is_valid(raise_exception=True)
        workflow_request = submission.to_workflow_request()
        admit_jobs(api_key_of(request).tenant, len(workflow_request.steps))
        workflow, created = create_workflow(workflow_request, api_key_of(request), correlation_id(request))
        job_ids = [
            str(job_id) for job_id in workflow.steps.order_by("index").values_list("job_id", flat=True)
        ]
        return Response(
            {
                "success": True,
                "workflow_id": workflow.workflow_id,
                "job_ids": job_ids,
                "status": workflow.status,
                "created": created,
            },
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        operation_id="api_workflows_list",
        parameters=filter_parameters(WorkflowFilter),
        responses=page("WorkflowPage", "workflows", WorkflowSerializer),
    )
    def get(self, request: Request) -> Response:
        page = read_page(request)
        visible = readable(Workflow.objects.all(), api_key_of(request))
        workflows = filter_or_400(WorkflowFilter, request.query_params, visible.order_by("-created_at"))
        return page_response("workflows", workflows, WorkflowSerializer, page)


class WorkflowDetailView(APIView):
    @extend_schema(
        responses=envelope(
            "WorkflowEnvelope",
            workflow=inline_serializer(
                "WorkflowDetail",
                {
                    **WorkflowSerializer().get_fields(),
                    "steps": serializers.ListField(child=serializers.DictField(), help_text="step_details"),
                    "dependencies": serializers.DictField(
                        child=serializers.ListField(child=serializers.IntegerField()),
                        help_text="{step index: [indices of the steps it depends on]}",
                    ),
                },
            ),
        )
    )
    def get(self, request: Request, workflow_id: str) -> Response:
        workflow = _seen(readable(Workflow.objects.all(), api_key_of(request)), request, workflow_id)
        steps = list(workflow.steps.select_related("job"))
        body = WorkflowSerializer(workflow).data
        if not workflow.is_terminal:
            body["progress"] = workflow_progress(steps, workflow.total_steps)  # live, with running steps
        body["steps"] = step_details(steps)
        body["dependencies"] = _dependencies(workflow)
        return Response({"success": True, "workflow": body})


def _seen(visible: QuerySet[Workflow], request: Request, workflow_id: str) -> Workflow:
    workflow = seen_by(visible, api_key_of(request), workflow_id)
    if workflow is None:
        raise Http404
    return workflow


def _dependencies(workflow: Workflow) -> dict[str, list[int]]:
    """{step index: [indices of the steps it depends on]}"""
    edges = JobDependency.objects.filter(job__workflow_step__workflow=workflow).values_list(
        "job__workflow_step__index", "depends_on__workflow_step__index"
    )
    graph: dict[str, list[int]] = {}
    for step_index, parent_index in edges.order_by("job__workflow_step__index", "input_index"):
        graph.setdefault(str(step_index), []).append(parent_index)
    return graph


class WorkflowCancelView(APIView):
    @extend_schema(
        request=WorkflowCancelSerializer,
        responses={200: WORKFLOW_CANCELLED, 202: WORKFLOW_CANCELLED},
    )
    def post(self, request: Request, workflow_id: str) -> Response:
        body = WorkflowCancelSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        found = _seen(owned(Workflow.objects.all(), api_key_of(request)), request, workflow_id)
        workflow = cancel_workflow(found.pk, body.validated_data.get("reason", ""))
        return Response(
            {
                "success": True,
                "workflow_id": workflow.workflow_id,
                "status": workflow.status,
                "workflow": WorkflowSerializer(workflow).data,
            },
            status=status.HTTP_200_OK if workflow.is_terminal else status.HTTP_202_ACCEPTED,
        )


@extend_schema_view(
    get=extend_schema(
        parameters=[StatsQuerySerializer],
        responses=envelope(
            "WorkflowStats",
            timeframe=serializers.CharField(),
            since=serializers.DateTimeField(),
            total=serializers.IntegerField(),
            by_status=serializers.DictField(child=serializers.IntegerField()),
            average_completion_seconds=serializers.FloatField(allow_null=True),
        ),
    )
)
class WorkflowStatsView(StatsView):
    def stats(self, timeframe: str, api_key: ApiKey) -> JsonObject:
        return workflow_stats(timeframe, readable(Workflow.objects.all(), api_key))
