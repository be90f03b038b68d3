"""One mapping between a submission (JobRequest) and the job it creates."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

from jobqueue.job_request import STORED_AS_IS, JobRequest
from jobqueue.models import Job


def test_every_field_stored_as_is_exists_on_both_sides():
    request_fields = {f.name for f in dataclasses.fields(JobRequest)}
    job_fields = {f.name for f in Job._meta.get_fields()} | {f.attname for f in Job._meta.concrete_fields}
    assert set(STORED_AS_IS) <= request_fields & job_fields


def test_a_job_gives_back_the_request_that_made_it():
    job = Job(
        id=uuid.uuid4(),
        type="upscale",
        payload={"image": "x"},
        priority=70,
        requirements={"pool": "fast"},
        required_capabilities=["fp16"],
        required_models=["esrgan"],
        required_gpu_memory_gb=12.0,
        required_pool="fast",
        max_retries=2,
        timeout_seconds=60,
        webhook_url="https://hooks.example/h",
        metadata={"a": 1},
        customer_id="c1",
        ctx={"bucket": "b"},
        workflow_id="wf",
        workflow_priority=90,
        workflow_datetime=datetime(2026, 1, 1, tzinfo=UTC),
        current_step=2,
        total_steps=3,
    )
    request = JobRequest.from_job(job, metadata={"retry_of": str(job.id)})
    for name in STORED_AS_IS:
        expected = {"retry_of": str(job.id)} if name == "metadata" else getattr(job, name)
        assert getattr(request, name) == expected, name
