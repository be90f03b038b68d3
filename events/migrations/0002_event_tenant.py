"""Every event about a job or a workflow carries its tenant; those written before are given theirs."""

from django.db import migrations, models

BACKFILL = """
    UPDATE jobqueue_event e SET tenant_id = j.tenant_id FROM jobqueue_job j
    WHERE e.tenant_id IS NULL AND e.job_id = j.id;
    UPDATE jobqueue_event e SET tenant_id = w.tenant_id FROM workflows_workflow w
    WHERE e.tenant_id IS NULL AND e.job_id IS NULL AND e.workflow_id = w.id;
"""


class Migration(migrations.Migration):

    dependencies = [
        ("events", "0001_initial"),
        ("jobqueue", "0013_tenants"),
        ("workflows", "0003_tenants"),
    ]

    operations = [
        migrations.AddField(
            model_name="event", name="tenant_id", field=models.BigIntegerField(blank=True, null=True)
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
        migrations.AddIndex(
            model_name="event", index=models.Index(fields=["tenant_id", "id"], name="event_tenant")
        ),
    ]
