"""Run by test_upgrade_in_place in a process of its own: `old` builds a database at the migrations
before the renovation and writes rows through those historical models (as a deployment of that
version would have); `new` migrates it to today and reads every row back through today's models,
printing what it found as JSON."""

from __future__ import annotations

import json
import os
import sys
import uuid

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.base")
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.migrations.executor import MigrationExecutor  # noqa: E402

BEFORE_RENOVATION = [
    ("contenttypes", "0002_remove_content_type_name"),
    ("jobqueue", "0010_notify_on_event_insert"),
    ("machines", "0004_machine_worker_customer_allowlist_and_more"),
    ("workflows", "0001_initial"),
    ("webhooks", "0001_initial"),
]
JOB_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")


def build_old() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE_RENOVATION)
    apps = executor.loader.project_state(BEFORE_RENOVATION).apps
    model = apps.get_model
    for name in ("apikey", "event", "eventrelaycursor", "job"):  # as that version's post_migrate made them
        model("contenttypes", "ContentType").objects.create(app_label="jobqueue", model=name)
    key = model("jobqueue", "ApiKey").objects.create(name="emprops", prefix="jq_old", key_hash="h" * 64)
    job = model("jobqueue", "Job").objects.create(
        id=JOB_ID,
        type="simulation",
        status="failed",
        timeout_seconds=60,
        order_time="2026-11-01T00:00Z",
        api_key=key,
        attempt=1,
        workflow_id="wf-old",
    )
    model("jobqueue", "JobExecution").objects.create(job=job, attempt=1, worker_id="w1", outcome="failed")
    model("jobqueue", "DeadLetterJob").objects.create(job=job, reason="retries_exhausted", attempts=1)
    model("jobqueue", "Event").objects.create(type="job_failed", job_id=JOB_ID, payload={"status": "failed"})
    model("jobqueue", "EventRelayCursor").objects.create(name="webhooks", last_txid=7, last_id=1)
    model("jobqueue", "JobSchedule").objects.create(
        name="nightly", cron="0 3 * * *", job_template={}, api_key=key
    )
    workflow = model("workflows", "Workflow").objects.create(id="wf-old", api_key=key, total_steps=1)
    model("workflows", "WorkflowStep").objects.create(workflow=workflow, index=0, name="only", job=job)
    endpoint = model("webhooks", "WebhookEndpoint").objects.create(
        owner=key, url="https://hooks.example/h", secret_encrypted="x", headers={"X-Team": "ops"}
    )
    delivery = model("webhooks", "WebhookDelivery").objects.create(
        endpoint=endpoint, url=endpoint.url, owner=key, event_type="job_failed", message_id="msg_1", body="{}"
    )
    model("webhooks", "WebhookAttempt").objects.create(
        delivery=delivery, number=1, started_at="2026-11-01T00:00Z"
    )
    model("webhooks", "DefaultSigningSecret").objects.create(owner=key, secret_encrypted="y")
    # Three default secrets of what becomes one tenant: the most recently rotated one stays.
    other = model("jobqueue", "ApiKey").objects.create(name="other", prefix="jq_old2", key_hash="i" * 64)
    model("webhooks", "DefaultSigningSecret").objects.create(
        owner=other, secret_encrypted="z", secret_rotated_at="2026-11-02T00:00Z"
    )
    model("webhooks", "DefaultSigningSecret").objects.create(owner=None, secret_encrypted="n")


def read_new() -> dict:
    call_command("migrate", interactive=False, verbosity=0)
    from django.contrib.contenttypes.models import ContentType

    from accounts.models import ApiKey
    from events.cursors import consume_events
    from events.models import Event, EventRelayCursor
    from jobqueue.models import Job, JobSchedule
    from webhooks.models import DefaultSigningSecret, WebhookAttempt, WebhookDelivery, WebhookEndpoint
    from workflows.models import Workflow

    key = ApiKey.objects.get(name="emprops")
    job = Job.objects.get(pk=JOB_ID)
    seen: list[int] = []
    consume_events("upgrade-check", 100, lambda events: seen.extend(e.id for e in events))
    return {
        "job_key": job.api_key.name,
        "executions": job.executions.count(),
        "open_dead_letters": job.dead_letters.filter(requeued_at__isnull=True).count(),
        "events": list(Event.objects.filter(job_id=JOB_ID).values_list("type", flat=True)),
        "cursor": list(
            EventRelayCursor.objects.filter(name="webhooks").values_list("last_txid", "last_id")[0]
        ),
        "events_consumable": len(seen),
        "schedule_key": JobSchedule.objects.get(name="nightly").api_key.name,
        "workflow_key": Workflow.objects.get(workflow_id="wf-old").api_key.name,
        "workflow_steps": Workflow.objects.get(workflow_id="wf-old").steps.count(),
        "endpoint_key": WebhookEndpoint.objects.get().owner.name,
        # Header values were stored as sent; now encrypted, and sent as they were.
        "endpoint_headers": [
            WebhookEndpoint.objects.get().headers["X-Team"] != "ops",
            WebhookEndpoint.objects.get().request_headers(),
        ],
        "delivery_key": WebhookDelivery.objects.get().owner.name,
        "attempts": WebhookAttempt.objects.count(),
        "default_secret": [
            (secret.tenant.name, secret.secret_encrypted) for secret in DefaultSigningSecret.objects.all()
        ],
        "key_jobs": key.jobs.count(),
        "content_types": sorted(
            f"{ct.app_label}.{ct.model}"
            for ct in ContentType.objects.filter(model__in=["apikey", "event", "eventrelaycursor"])
        ),
        "new_event_ok": Event.objects.create(type="job_queued", payload={}).txid > 0,
        # Tenants came later: everything that existed belongs to the default one, and the keys that
        # existed keep every power they had (admins).
        "tenants": {
            "key": [key.tenant.name, key.role],
            "job": job.tenant.name,
            "schedule": JobSchedule.objects.get(name="nightly").tenant.name,
            "workflow": Workflow.objects.get(workflow_id="wf-old").tenant.name,
            "endpoint": WebhookEndpoint.objects.get().tenant.name,
            "delivery": WebhookDelivery.objects.get().tenant.name,
        },
    }


if __name__ == "__main__":
    if sys.argv[1] == "old":
        build_old()
    else:
        print(json.dumps(read_new()))
