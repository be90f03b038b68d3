"""Every workflow belongs to a tenant (see jobqueue 0013, which does the same for jobs)."""

import django.db.models.deletion
from django.db import migrations, models

OWNER_OF = """
    UPDATE workflows_workflow t SET tenant_id = coalesce(
        (SELECT k.tenant_id FROM jobqueue_apikey k WHERE k.id = t.api_key_id),
        (SELECT d.id FROM accounts_tenant d WHERE d.name = 'default'))
    WHERE tenant_id IS NULL
"""
ONE_IDEMPOTENCY_KEY_PER_TENANT = """
    UPDATE workflows_workflow SET idempotency_key = NULL WHERE id IN (
        SELECT id FROM (
            SELECT id, row_number() OVER (PARTITION BY tenant_id, idempotency_key ORDER BY created_at, id) AS n
            FROM workflows_workflow WHERE idempotency_key IS NOT NULL) ranked
        WHERE n > 1)
"""


def _tenant(null: bool) -> models.ForeignKey:
    return models.ForeignKey(
        null=null, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="accounts.tenant"
    )


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0002_tenants_and_roles"),
        ("workflows", "0002_api_key_in_accounts"),
    ]

    operations = [
        migrations.AddField(model_name="workflow", name="tenant", field=_tenant(null=True)),
        migrations.RunSQL(OWNER_OF, migrations.RunSQL.noop),
        migrations.AlterField(model_name="workflow", name="tenant", field=_tenant(null=False)),
        migrations.RemoveConstraint(model_name="workflow", name="workflow_idempotency_per_key"),
        migrations.RunSQL(ONE_IDEMPOTENCY_KEY_PER_TENANT, migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name="workflow",
            constraint=models.UniqueConstraint(
                condition=models.Q(idempotency_key__isnull=False),
                fields=("tenant", "idempotency_key"),
                name="workflow_idempotency_per_tenant",
            ),
        ),
        migrations.AddIndex(
            model_name="workflow",
            index=models.Index(fields=["tenant", "-created_at"], name="workflow_tenant_created"),
        ),
    ]
