"""Every job and schedule belongs to a tenant: the one of its key, or the default tenant (work
created without a key, and everything whose key was deleted). Idempotency keys become unique per
tenant; where keys of one tenant had used the same idempotency key before, the newer rows give
theirs up (they were created long ago: a retry of those requests is no longer expected)."""

import django.db.models.deletion
from django.db import migrations, models

OWNER_OF = """
    UPDATE {table} t SET tenant_id = coalesce(
        (SELECT k.tenant_id FROM jobqueue_apikey k WHERE k.id = t.api_key_id),
        (SELECT d.id FROM accounts_tenant d WHERE d.name = 'default'))
    WHERE tenant_id IS NULL
"""
ONE_IDEMPOTENCY_KEY_PER_TENANT = """
    UPDATE jobqueue_job SET idempotency_key = NULL WHERE id IN (
        SELECT id FROM (
            SELECT id, row_number() OVER (PARTITION BY tenant_id, idempotency_key ORDER BY created_at, id) AS n
            FROM jobqueue_job WHERE idempotency_key IS NOT NULL) ranked
        WHERE n > 1)
"""


def _tenant(null: bool) -> models.ForeignKey:
    return models.ForeignKey(
        null=null, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="accounts.tenant"
    )


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0002_tenants_and_roles"),
        ("jobqueue", "0012_pending_by_type_and_pool"),
    ]

    operations = [
        migrations.AddField(model_name="job", name="tenant", field=_tenant(null=True)),
        migrations.AddField(model_name="jobschedule", name="tenant", field=_tenant(null=True)),
        migrations.RunSQL(OWNER_OF.format(table="jobqueue_job"), migrations.RunSQL.noop),
        migrations.RunSQL(OWNER_OF.format(table="jobqueue_jobschedule"), migrations.RunSQL.noop),
        migrations.AlterField(model_name="job", name="tenant", field=_tenant(null=False)),
        migrations.AlterField(model_name="jobschedule", name="tenant", field=_tenant(null=False)),
        migrations.RemoveConstraint(model_name="job", name="job_idempotency_key_per_api_key"),
        migrations.RunSQL(ONE_IDEMPOTENCY_KEY_PER_TENANT, migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name="job",
            constraint=models.UniqueConstraint(
                condition=models.Q(idempotency_key__isnull=False),
                fields=("tenant", "idempotency_key"),
                name="job_idempotency_key_per_tenant",
            ),
        ),
        migrations.AddIndex(
            model_name="job", index=models.Index(fields=["tenant", "-created_at"], name="job_tenant_created")
        ),
        # Schedule names were unique across the install; now per tenant.
        migrations.AlterField(model_name="jobschedule", name="name", field=models.CharField(max_length=200)),
        migrations.AddConstraint(
            model_name="jobschedule",
            constraint=models.UniqueConstraint(fields=("tenant", "name"), name="schedule_name_per_tenant"),
        ),
    ]
