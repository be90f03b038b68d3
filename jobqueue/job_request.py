"""A validated submission (`JobRequest`) and the fields a job stores from it as they are."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobqueue.models import Job
from wire.json_types import JsonObject


@dataclass
class JobRequest:
    """A validated submission, already translated from whichever client dialect sent it."""

    type: str
    payload: JsonObject
    priority: int
    requirements: JsonObject
    required_capabilities: list[str]
    required_models: list[str]
    required_gpu_memory_gb: float | None
    required_pool: str | None
    max_retries: int
    timeout_seconds: int
    scheduled_at: datetime | None = None
    webhook_url: str | None = None
    metadata: JsonObject = field(default_factory=dict)
    idempotency_key: str | None = None
    customer_id: str | None = None
    # At most `concurrency_limit` jobs of one key run at once (the job's own, else its tenant's).
    concurrency_key: str = ""
    concurrency_limit: int | None = None
    ctx: JsonObject | None = None
    workflow_id: str | None = None
    workflow_priority: int | None = None
    workflow_datetime: datetime | None = None
    current_step: int | None = None
    total_steps: int | None = None
    # Its owner when it is not the submitting key's tenant (a workflow's step, a schedule's run, a
    # resubmission): None means the key's tenant (the default tenant for no key).
    tenant_id: int | None = None
    # Created by the workflow engine as a step: it starts `waiting` when it has dependencies.
    workflow_step: bool = False
    waiting: bool = False
    # The job's id when the client names it (EmProps' `message_id` over /ws/client); else a new one.
    job_id: uuid.UUID | None = None
    # Jobs that must complete first (a single submit's `depends_on`: `jobqueue/dependencies.py`).
    depends_on: list[uuid.UUID] = field(default_factory=list)

    @classmethod
    def from_job(cls, job: Job, **changes: Any) -> JobRequest:
        """The request that would submit `job` again (an operator's resubmission), with `changes`."""
        return cls(**{**{name: getattr(job, name) for name in STORED_AS_IS}, **changes})


#: The request fields a job stores as they are, under the same name (the one JobRequest <-> Job
#: mapping; what is derived, such as the status and the place in line, is computed in `_create`).
STORED_AS_IS = (
    "tenant_id",
    "type",
    "payload",
    "priority",
    "requirements",
    "required_capabilities",
    "required_models",
    "required_gpu_memory_gb",
    "required_pool",
    "max_retries",
    "timeout_seconds",
    "scheduled_at",
    "webhook_url",
    "metadata",
    "idempotency_key",
    "customer_id",
    "concurrency_key",
    "concurrency_limit",
    "ctx",
    "workflow_id",
    "workflow_priority",
    "workflow_datetime",
    "current_step",
    "total_steps",
)
