"""Workflows: DAGs of jobs. One owner of workflow state; one description of its steps."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from accounts.models import ApiKey, Tenant
from jobqueue.models import Job


class WorkflowStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_WORKFLOW_STATUSES = frozenset(
    {WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED}
)


class FailurePolicy(models.TextChoices):
    #: A step that failed for good cancels every step not yet started; the workflow fails.
    FAIL_FAST = "fail_fast"
    #: Independent branches go on; only the failed step's dependents are cancelled.
    CONTINUE = "continue"


class WorkflowMode(models.TextChoices):
    #: Defined whole by `POST /api/workflows`; the engine releases steps as dependencies complete.
    DEFINED = "defined"
    #: Built by a client submitting jobs one step at a time (the replaced system's way).
    CLIENT = "client"


def _new_workflow_id() -> str:
    return str(uuid.uuid4())


class Workflow(models.Model):
    # The row's own key, never shown to clients: steps and notifications point at it.
    key = models.BigAutoField(primary_key=True)
    # The id clients see and name, unique within its tenant: client-driven workflows bring their own
    # (need not be UUIDs), and another tenant using the same one neither blocks nor sees this one.
    workflow_id = models.CharField(max_length=100, default=_new_workflow_id, editable=False)
    name = models.CharField(max_length=200, blank=True, default="")
    description = models.TextField(blank=True, default="")
    mode = models.CharField(max_length=16, choices=WorkflowMode.choices, default=WorkflowMode.DEFINED)
    status = models.CharField(max_length=16, choices=WorkflowStatus.choices, default=WorkflowStatus.PENDING)
    failure_policy = models.CharField(
        max_length=16, choices=FailurePolicy.choices, default=FailurePolicy.FAIL_FAST
    )
    priority = models.PositiveSmallIntegerField(default=50)
    source = models.CharField(max_length=50, blank=True, default="", help_text="e.g. emprops")
    webhook_url = models.URLField(max_length=2000, null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    total_steps = models.PositiveIntegerField(default=0)
    completed_steps = models.PositiveIntegerField(default=0)
    failed_steps = models.PositiveIntegerField(default=0)
    cancelled_steps = models.PositiveIntegerField(default=0)
    progress = models.PositiveSmallIntegerField(default=0)
    step_details = models.JSONField(null=True, blank=True, help_text="Frozen when the workflow ends.")

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL)
    created_by = models.CharField(max_length=100, blank=True, default="")
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    correlation_id = models.CharField(max_length=100, blank=True, default="")
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # The workflow's place in line: its steps are ordered by it, so older workflows finish first.
    order_time = models.DateTimeField(db_default=Now())
    created_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(db_default=Now())
    # When a user was last told of its result (the miniapp's attestation, `POST /api/user_notified`).
    user_notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "-created_at"], name="workflow_status_created"),
            models.Index(fields=["-created_at"], name="workflow_created"),
            models.Index(fields=["tenant", "-created_at"], name="workflow_tenant_created"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "workflow_id"], name="workflow_id_per_tenant"),
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="workflow_idempotency_per_tenant",
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="workflow_progress_0_100"),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.workflow_id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_WORKFLOW_STATUSES


class WorkflowStep(models.Model):
    """One step: its place and name in the workflow, and the job it created (which waits for the
    steps it depends on as any job waits: `jobqueue.JobDependency`)."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveIntegerField(help_text="Position in the definition, or the client's step number.")
    name = models.CharField(max_length=100)
    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="workflow_step")

    class Meta:
        ordering = ["workflow", "index"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "index"], name="workflow_step_index"),
            models.UniqueConstraint(fields=["workflow", "name"], name="workflow_step_name"),
        ]

    def __str__(self) -> str:
        return f"{self.workflow.workflow_id}#{self.index} {self.name}"
