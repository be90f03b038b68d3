"""Jobs, their attempts, dead letters and recurring schedules."""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, Now

from accounts.models import ApiKey, Tenant

#: A job's id as callers hold it: the UUID, or its text (from a URL, a message, an event).
JobKey = uuid.UUID | str


class JobStatus(models.TextChoices):
    #: Held until `scheduled_at` (or a retry's backoff) passes.
    SCHEDULED = "scheduled"
    #: Waiting for the jobs it depends on (a workflow step's, or a single submit's `depends_on`).
    WAITING = "waiting"
    #: Eligible for dispatch to a worker.
    PENDING = "pending"
    #: Given to a worker; its message is on that worker's queue.
    ASSIGNED = "assigned"
    #: The worker reported that it started the job.
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE_STATUSES = frozenset({JobStatus.ASSIGNED, JobStatus.RUNNING})
NOT_STARTED_STATUSES = frozenset({JobStatus.SCHEDULED, JobStatus.WAITING, JobStatus.PENDING})


def statuses_sql(statuses: frozenset[JobStatus]) -> str:
    """A set of statuses as an SQL list literal, `('assigned', 'running')`: constants in the statement
    (not parameters), so the planner can match the partial indexes built on the same condition."""
    return "(" + ", ".join(f"'{status.value}'" for status in sorted(statuses)) + ")"


#: Dispatch order: highest effective priority, then the workflow's (or job's) time, then exact submission
#: order. The pending-job index, the dispatcher's SQL and every list "in line" use this one definition.
_DISPATCH_COLUMNS = (("effective_priority", "DESC"), ("order_time", "ASC"), ("submit_seq", "ASC"))
DISPATCH_ORDER = tuple(models.F(c).desc() if d == "DESC" else c for c, d in _DISPATCH_COLUMNS)


#: The pool a pending job is filed under: its required pool, '' for any pool.
PENDING_POOL = Coalesce("required_pool", Value(""))
PENDING_POOL_SQL = "coalesce({alias}.required_pool, '')"


#: A job's shape: a hash of every field that decides which workers may run it, those that
#: `dispatch.matching.shape_matches_worker` reads (the tenant and customer only for a job that needs a
#: worker dedicated to its customer; other customers are each job's own: `customer_served`). All jobs of
#: one shape run on the same workers, so an offer of work decides once per shape, not once per job.
SHAPE_SQL = """hashtextextended(
    type || chr(31) || coalesce(required_pool, chr(30)) || chr(31) || required_capabilities::text
    || chr(31) || required_models::text || chr(31) || coalesce(required_gpu_memory_gb::text, chr(30))
    || chr(31) || CASE WHEN requires_dedicated_worker
                       THEN tenant_id::text || chr(31) || coalesce(customer_id, chr(30)) ELSE '' END,
    0)"""


def dispatch_order_sql(alias: str) -> str:
    """DISPATCH_ORDER as an SQL ORDER BY list over the job rows `alias`."""
    return ", ".join(f"{alias}.{column}{' DESC' if d == 'DESC' else ''}" for column, d in _DISPATCH_COLUMNS)


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=100, help_text="Routing key: the kind of work (service_required).")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    priority = models.PositiveSmallIntegerField(default=50)

    payload = models.JSONField(default=dict, blank=True)
    ctx = models.JSONField(null=True, blank=True, help_text="Storage context; never sent to engines.")
    requirements = models.JSONField(default=dict, blank=True)
    # The requirements, normalised into columns the dispatcher matches in SQL.
    required_capabilities = models.JSONField(default=list, blank=True)
    required_models = models.JSONField(default=list, blank=True)
    required_gpu_memory_gb = models.FloatField(null=True, blank=True)
    required_pool = models.CharField(max_length=64, null=True, blank=True)
    shape = models.GeneratedField(
        expression=RawSQL(SHAPE_SQL, ()), output_field=models.BigIntegerField(), db_persist=True
    )

    inputs = models.JSONField(
        default=list,
        blank=True,
        help_text="Results of the jobs it depends on, given to its worker (`jobqueue/dependencies.py`).",
    )
    open_dependencies = models.PositiveIntegerField(
        db_default=0, help_text="How many of the jobs it depends on have not completed yet."
    )
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True, help_text="{code, message, class}")

    attempt = models.PositiveIntegerField(default=0, help_text="Current (or last) attempt number, from 1.")
    retry_count = models.PositiveIntegerField(default=0, help_text="Retries used of the current budget.")
    redrive_count = models.PositiveIntegerField(
        default=0, help_text="Times an operator requeued it from the dead-letter queue."
    )
    budget_start_attempt = models.PositiveIntegerField(
        default=0, help_text="Attempts up to this one belong to budgets spent before a requeue."
    )
    max_retries = models.PositiveSmallIntegerField(default=3)
    timeout_seconds = models.PositiveIntegerField()
    scheduled_at = models.DateTimeField(null=True, blank=True)

    webhook_url = models.URLField(max_length=2000, null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    created_by = models.CharField(max_length=100, blank=True, default="")
    customer_id = models.CharField(max_length=200, null=True, blank=True)
    requires_dedicated_worker = models.BooleanField(
        default=False, help_text="customer_isolation: strict, only a worker dedicated to its customer."
    )
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    # Limits (docs/scheduling.md): at most `concurrency_limit` jobs of one key run at once.
    concurrency_key = models.CharField(max_length=200, blank=True, default="")
    concurrency_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Its own, or its tenant's for the key, read at submit."
    )
    counted_in = ArrayField(
        models.CharField(max_length=210),
        default=list,
        blank=True,
        help_text="The running counts it holds a place in while active (RunningCount); kept by the database.",
    )
    correlation_id = models.CharField(max_length=100, blank=True, default="")

    # Client-driven workflows (the replaced system's fields).
    workflow_id = models.CharField(max_length=100, null=True, blank=True)
    workflow_priority = models.PositiveSmallIntegerField(null=True, blank=True)
    workflow_datetime = models.DateTimeField(null=True, blank=True)
    current_step = models.PositiveIntegerField(null=True, blank=True)
    total_steps = models.PositiveIntegerField(null=True, blank=True)

    # Dispatch order: priority, then the workflow's (or job's) time, then exact submission order.
    effective_priority = models.PositiveSmallIntegerField(default=50)
    order_time = models.DateTimeField()
    submit_seq = models.BigIntegerField(
        db_default=models.Func(models.Value("jobqueue_job_submit_seq"), function="nextval"),
        editable=False,
    )

    worker_id = models.CharField(max_length=200, null=True, blank=True)
    machine_id = models.CharField(max_length=200, null=True, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    stage = models.CharField(max_length=200, blank=True, default="")
    progress_event_at = models.DateTimeField(
        null=True, blank=True, help_text="When progress was last logged."
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=500, blank=True, default="")

    created_at = models.DateTimeField(db_default=Now())
    queued_at = models.DateTimeField(null=True, blank=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(priority__lte=100), name="job_priority_0_100"),
            models.CheckConstraint(condition=Q(progress__lte=100), name="job_progress_0_100"),
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="job_idempotency_key_per_tenant",
            ),
        ]
        indexes = [
            models.Index(
                *DISPATCH_ORDER,
                name="job_dispatch_order",
                condition=Q(status="pending"),
            ),
            # The pending set by what decides whether a worker can run a job at all (its type and
            # pool, then its shape), then by what fair share and limits decide (its tenant and
            # concurrency key), in dispatch order within each: a worker reads only the ranges of its
            # types and pools, and in them one entry per group it cannot run or that is at a limit,
            # however many jobs of that group wait (dispatch/assignment.py).
            models.Index(
                "type",
                PENDING_POOL,
                "shape",
                "tenant",
                "concurrency_key",
                *DISPATCH_ORDER,
                name="job_dispatch_by_shape",
                condition=Q(status="pending"),
            ),
            models.Index(
                fields=["worker_id"],
                name="job_active_by_worker",
                condition=Q(status__in=["assigned", "running"]),
            ),
            # Each tenant's running jobs, which fair share weighs (dispatch/scheduling.py).
            models.Index(
                fields=["tenant"],
                name="job_active_by_tenant",
                condition=Q(status__in=["assigned", "running"]),
            ),
            models.Index(fields=["scheduled_at"], name="job_scheduled_due", condition=Q(status="scheduled")),
            models.Index(fields=["status", "-created_at"], name="job_status_created"),
            models.Index(fields=["type", "-created_at"], name="job_type_created"),
            models.Index(fields=["created_by", "-created_at"], name="job_creator_created"),
            models.Index(fields=["-created_at"], name="job_created"),
            # Throughput over a window (metrics/readings.py) and retention of finished jobs.
            models.Index(
                fields=["completed_at"], name="job_completed", condition=Q(completed_at__isnull=False)
            ),
            models.Index(fields=["tenant", "-created_at"], name="job_tenant_created"),
            # A tenant's queued jobs, counted for its quota (jobqueue.quotas).
            models.Index(
                fields=["tenant"],
                name="job_queued_by_tenant",
                condition=Q(status__in=["scheduled", "waiting", "pending"]),
            ),
            models.Index(fields=["workflow_id"], name="job_workflow", condition=Q(workflow_id__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class ExecutionOutcome(models.TextChoices):
    ASSIGNED = "assigned"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"


class JobExecution(models.Model):
    """One attempt of a job on one worker."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="executions")
    attempt = models.PositiveIntegerField()
    worker_id = models.CharField(max_length=200)
    machine_id = models.CharField(max_length=200, blank=True, default="")
    outcome = models.CharField(
        max_length=16, choices=ExecutionOutcome.choices, default=ExecutionOutcome.ASSIGNED
    )
    error = models.JSONField(null=True, blank=True)
    assigned_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    # Sent with the job to its worker only; every report about this attempt must carry it.
    lease_token = models.UUIDField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["attempt"]
        constraints = [models.UniqueConstraint(fields=["job", "attempt"], name="execution_one_per_attempt")]

    def __str__(self) -> str:
        return f"{self.job_id} attempt {self.attempt} on {self.worker_id}: {self.outcome}"


class DeadLetterReason(models.TextChoices):
    RETRIES_EXHAUSTED = "retries_exhausted"
    PERMANENT_FAILURE = "permanent_failure"
    #: Its attempts kept killing their worker.
    POISON = "poison"


#: A dead letter is open until an operator requeues its job; a job has at most one open (constraint).
OPEN_DEAD_LETTER = Q(requeued_at__isnull=True)


class DeadLetterQuerySet(models.QuerySet["DeadLetterJob"]):
    def open(self) -> DeadLetterQuerySet:
        return self.filter(OPEN_DEAD_LETTER)

    def requeued(self) -> DeadLetterQuerySet:
        return self.exclude(OPEN_DEAD_LETTER)


class DeadLetterJob(models.Model):
    """A job that failed for good: retries exhausted, a permanent error, or poison.

    Requeueing keeps the row (with `requeued_at`) as history; a job has at most one open dead letter."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="dead_letters")
    reason = models.CharField(max_length=32, choices=DeadLetterReason.choices)
    last_error = models.JSONField(null=True, blank=True)
    attempts = models.PositiveIntegerField(help_text="The job's attempt number when it was dead-lettered.")
    created_at = models.DateTimeField(db_default=Now())
    requeued_at = models.DateTimeField(null=True, blank=True)
    requeued_by = models.CharField(max_length=100, blank=True, default="")

    objects = DeadLetterQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["-created_at"], name="deadletter_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["job"], condition=OPEN_DEAD_LETTER, name="one_open_dead_letter_per_job"
            )
        ]

    def __str__(self) -> str:
        return f"{self.job_id}: {self.reason}"

    @property
    def is_open(self) -> bool:
        return self.requeued_at is None


class JobSchedule(models.Model):
    """A recurring job: a submission template run on a cron expression or a fixed interval."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    cron = models.CharField(max_length=200, blank=True, default="", help_text="Five-field cron, in UTC.")
    interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    job_template = models.JSONField(help_text="A POST /api/jobs body.")
    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_error = models.CharField(
        max_length=500,
        blank=True,
        default="",
        help_text="Why the last run could not submit (it was disabled).",
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="schedules"
    )
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(cron="") & Q(interval_seconds__isnull=False))
                | (~Q(cron="") & Q(interval_seconds__isnull=True)),
                name="schedule_cron_xor_interval",
            ),
            models.UniqueConstraint(fields=["tenant", "name"], name="schedule_name_per_tenant"),
        ]
        indexes = [models.Index(fields=["next_run_at"], name="schedule_due", condition=Q(enabled=True))]

    def __str__(self) -> str:
        return self.name


class JobDependency(models.Model):
    """An edge of the one dependency graph: `job` runs only after `depends_on` completed. A workflow's
    steps and a single submit's `depends_on` are both made of these; the dependent names each input
    (`input_index`, `input_name`) as its worker receives it."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="dependency_links")
    depends_on = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="dependent_links")
    input_index = models.PositiveIntegerField(
        default=0, help_text="The input's place: the step's index in its workflow, or in depends_on."
    )
    input_name = models.CharField(
        max_length=100, blank=True, default="", help_text="The step's name; empty for depends_on."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "depends_on"], name="job_dependency_once"),
            models.CheckConstraint(condition=~Q(job=models.F("depends_on")), name="job_no_self_dependency"),
        ]


class RunningCount(models.Model):
    """How many of a tenant's jobs hold a place that a limit caps (`place`: "tenant", or "key:<its
    concurrency key>"), kept by the database as jobs start and stop (migration 0022's trigger, which
    also refuses a start past the limit). Only limited places are counted: a row per busy limit,
    none for the unlimited work of a tenant."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    place = models.CharField(max_length=210)
    running = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "place"], name="running_count_place")]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.place}: {self.running}"
