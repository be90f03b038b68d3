"""`core.db.insert_many`: one statement for many rows, the same rows `bulk_create` writes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.forms.models import model_to_dict

from accounts.models import Tenant
from core.db import insert_many
from events.models import Event
from jobqueue.models import Job

pytestmark = pytest.mark.django_db


def _job(**fields) -> Job:
    return Job(
        type="simulation",
        payload={"prompt": "a cat", "nested": [1, {"x": None}], "text": "ü \u2603"},
        required_capabilities=["fp16", "sdxl"],
        required_gpu_memory_gb=11.5,
        order_time=datetime(2026, 12, 2, 4, 5, 6, 123456, tzinfo=UTC),
        metadata={"k": "v"},
        timeout_seconds=60,
        tenant=Tenant.default(),
        **fields,
    )


def test_rows_written_by_insert_many_equal_those_bulk_create_writes():
    by_bulk_create, by_insert_many = _job(), _job()
    Job.objects.bulk_create([by_bulk_create])
    insert_many(Job, [by_insert_many])

    first, second = (model_to_dict(Job.objects.get(pk=j.pk)) for j in (by_bulk_create, by_insert_many))
    differing = {"id", "job_id", "submit_seq", "created_at", "updated_at"}
    assert {k: v for k, v in first.items() if k not in differing} == {
        k: v for k, v in second.items() if k not in differing
    }
    stored = Job.objects.get(pk=by_insert_many.pk)
    assert stored.order_time.microsecond == 123456  # to the microsecond
    assert stored.payload["text"] == "ü \u2603"


def test_the_databases_defaults_are_read_back_onto_the_objects_in_order():
    jobs = [_job() for _ in range(5)]
    insert_many(Job, jobs)

    seqs = [job.submit_seq for job in jobs]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert seqs == [Job.objects.get(pk=job.pk).submit_seq for job in jobs]
    events = [Event(type="job_submitted", job_id=job.pk, payload={}) for job in jobs]
    insert_many(Event, events)
    assert [e.job_id for e in Event.objects.filter(pk__in=[e.pk for e in events]).order_by("id")] == [
        job.pk for job in jobs
    ]


def test_objects_that_leave_different_columns_to_the_database_are_refused():
    with pytest.raises(ValueError, match="same columns"):
        insert_many(Job, [_job(), _job(submit_seq=10**9)])
    assert not Job.objects.exists()


def test_nothing_to_insert_is_no_statement(django_assert_num_queries):
    with django_assert_num_queries(0):
        insert_many(Job, [])
    assert uuid.UUID(str(_job().pk))  # keys are made in Python, before the insert
