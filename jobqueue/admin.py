"""The operator console for jobs, attempts, dead letters, events and API keys."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from core.admin import act_on_each
from events.models import Event
from jobqueue import dead_letters
from jobqueue.cancellation import cancel_job
from jobqueue.models import DeadLetterJob, DeadLetterQuerySet, Job, JobExecution, JobSchedule
from jobqueue.resubmit import resubmit_copy


class JobExecutionInline(admin.TabularInline[JobExecution, Job]):
    model = JobExecution
    extra = 0
    can_delete = False
    readonly_fields = [f.name for f in JobExecution._meta.fields]


@admin.action(description="Cancel selected jobs")
def cancel_jobs(modeladmin: admin.ModelAdmin[Job], request: HttpRequest, queryset: QuerySet[Job]) -> None:
    reason = f"cancelled by {request.user} from the admin"
    act_on_each(
        request,
        queryset,
        lambda job: cancel_job(job.pk, reason=reason),
        "cancellation requested for {count} job(s)",
    )


@admin.action(description="Retry selected jobs (submit a fresh copy)")
def retry_jobs(modeladmin: admin.ModelAdmin[Job], request: HttpRequest, queryset: QuerySet[Job]) -> None:
    copies = [resubmit_copy(job) for job in queryset.filter(status__in=["failed", "cancelled", "completed"])]
    messages.info(request, f"submitted {len(copies)} fresh copies")


class PoolFilter(admin.SimpleListFilter):
    title = "pool"
    parameter_name = "pool"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        pools = Job.objects.exclude(required_pool=None).values_list("required_pool", flat=True).distinct()
        return [(p, p) for p in pools.order_by("required_pool")[:50] if p]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(required_pool=self.value()) if self.value() else queryset


@admin.register(Job)
class JobAdmin(admin.ModelAdmin[Job]):
    list_display = [
        "id",
        "type",
        "status",
        "priority",
        "progress",
        "attempt",
        "worker_id",
        "created_by",
        "created_at",
    ]
    list_filter = ["status", "type", PoolFilter, "created_at"]
    search_fields = ["id", "type", "idempotency_key", "workflow_id", "customer_id", "worker_id", "created_by"]
    readonly_fields = [f.name for f in Job._meta.fields]
    inlines = [JobExecutionInline]
    actions = [cancel_jobs, retry_jobs]
    date_hierarchy = "created_at"
    list_per_page = 50
    show_full_result_count = False  # counting millions of rows on every page is slow

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are submitted through the API, which validates them


@admin.register(JobExecution)
class JobExecutionAdmin(admin.ModelAdmin[JobExecution]):
    list_display = ["job", "attempt", "worker_id", "outcome", "started_at", "duration_ms"]
    list_filter = ["outcome"]
    search_fields = ["job__id", "worker_id", "machine_id"]
    readonly_fields = [f.name for f in JobExecution._meta.fields]


class DeadLetterStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [("open", "open"), ("requeued", "requeued")]

    def queryset(self, request: HttpRequest, queryset: DeadLetterQuerySet) -> DeadLetterQuerySet:  # type: ignore[override]
        if self.value() == "open":
            return queryset.open()
        if self.value() == "requeued":
            return queryset.requeued()
        return queryset


@admin.register(DeadLetterJob)
class DeadLetterJobAdmin(admin.ModelAdmin[DeadLetterJob]):
    list_display = ["job", "reason", "attempts", "created_at", "requeued_at"]
    list_filter = [DeadLetterStateFilter, "reason", "job__type", "created_at"]
    search_fields = ["job__id", "job__type"]
    readonly_fields = [f.name for f in DeadLetterJob._meta.fields]
    actions = ["requeue_selected", "discard_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # dead letters are written by the control plane

    @admin.action(description="Requeue selected dead letters (same job, fresh retry budget)")
    def requeue_selected(self, request: HttpRequest, queryset: DeadLetterQuerySet) -> None:
        outcome = dead_letters.requeue_many(
            queryset, limit=queryset.count(), requeued_by=f"admin:{request.user}"
        )
        skipped = queryset.count() - outcome.requeued
        messages.info(request, f"requeued {outcome.requeued} job(s); {skipped} already requeued or busy")

    @admin.action(description="Discard selected dead letters (the jobs stay failed)")
    def discard_selected(self, request: HttpRequest, queryset: DeadLetterQuerySet) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        for dead_letter_id in ids:
            dead_letters.discard(dead_letter_id, discarded_by=f"admin:{request.user}")
        messages.info(request, f"discarded {len(ids)} dead letter(s)")

    def has_delete_permission(self, request: HttpRequest, obj: DeadLetterJob | None = None) -> bool:
        return False  # "discard" records an event; a bare delete would not


@admin.register(Event)
class EventAdmin(admin.ModelAdmin[Event]):
    list_display = ["id", "type", "job_id", "worker_id", "created_at"]
    list_filter = ["type"]
    search_fields = ["job_id", "workflow_id", "worker_id", "correlation_id"]
    readonly_fields = [f.name for f in Event._meta.fields]


@admin.register(JobSchedule)
class JobScheduleAdmin(admin.ModelAdmin[JobSchedule]):
    list_display = ["name", "cron", "interval_seconds", "enabled", "next_run_at", "last_run_at"]
    list_filter = ["enabled"]
    search_fields = ["name"]
    readonly_fields = ["next_run_at", "last_run_at", "last_job", "created_at", "updated_at"]
    actions = ["enable", "disable"]

    def save_model(self, request: HttpRequest, obj: JobSchedule, form: Any, change: bool) -> None:
        from jobqueue.schedules import next_run_after

        obj.next_run_at = next_run_after(obj, timezone.now()) if obj.enabled else None
        super().save_model(request, obj, form, change)

    @admin.action(description="Enable selected schedules")
    def enable(self, request: HttpRequest, queryset: QuerySet[JobSchedule]) -> None:
        from jobqueue.schedules import next_run_after

        for schedule in queryset.filter(enabled=False):
            schedule.enabled = True
            schedule.next_run_at = next_run_after(schedule, timezone.now())
            schedule.save(update_fields=["enabled", "next_run_at", "updated_at"])

    @admin.action(description="Disable selected schedules")
    def disable(self, request: HttpRequest, queryset: QuerySet[JobSchedule]) -> None:
        queryset.update(enabled=False, next_run_at=None)
