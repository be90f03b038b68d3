"""The operator console for workflows: each with its steps, and a cancel action."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from core.admin import act_on_each
from workflows.cancellation import cancel_workflow
from workflows.models import Workflow, WorkflowStep


class WorkflowStepInline(admin.TabularInline[WorkflowStep, Workflow]):
    model = WorkflowStep
    fields = ("index", "name", "job", "job_status", "open_dependencies")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["index"]

    @admin.display(description="status")
    def job_status(self, step: WorkflowStep) -> str:
        return step.job.status

    @admin.display(description="waiting for")
    def open_dependencies(self, step: WorkflowStep) -> int:
        return step.job.open_dependencies

    def has_add_permission(self, request: HttpRequest, obj: Workflow | None = None) -> bool:
        return False


@admin.action(description="Cancel selected workflows")
def cancel_workflows(
    modeladmin: admin.ModelAdmin[Workflow], request: HttpRequest, queryset: QuerySet[Workflow]
) -> None:
    reason = f"cancelled by {request.user} from the admin"
    act_on_each(
        request,
        queryset,
        lambda workflow: cancel_workflow(workflow.pk, reason=reason),
        "cancellation requested for {count} workflow(s)",
    )


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin[Workflow]):
    list_display = [
        "workflow_id",
        "tenant",
        "name",
        "mode",
        "status",
        "progress",
        "completed_steps",
        "failed_steps",
        "total_steps",
        "priority",
        "created_at",
    ]
    list_filter = ["status", "mode", "failure_policy", "source", "created_at"]
    search_fields = ["workflow_id", "name", "created_by", "correlation_id"]
    readonly_fields = [f.name for f in Workflow._meta.fields]
    inlines = [WorkflowStepInline]
    actions = [cancel_workflows]
    date_hierarchy = "created_at"
    list_per_page = 50
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workflow]:
        return super().get_queryset(request).prefetch_related("steps__job")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # workflows are created through the API, which validates them
