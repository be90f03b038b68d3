"""Endpoints, deliveries and default signing secrets belong to a tenant: the one of the key that made
them, or the default tenant (deliveries of work without a key, and whatever lost its key).

The default signing secret was one per key; it becomes one per tenant. Where several keys of one
tenant had one, the tenant keeps the most recently rotated (before tenants, every key was the default
tenant's admin, so one team's receivers verify one secret from here on)."""

import django.db.models.deletion
from django.db import migrations, models

TENANT_OF = """
    UPDATE {table} t SET tenant_id = coalesce(
        (SELECT k.tenant_id FROM jobqueue_apikey k WHERE k.id = t.owner_id),
        (SELECT d.id FROM accounts_tenant d WHERE d.name = 'default'))
    WHERE tenant_id IS NULL
"""
ONE_DEFAULT_SECRET_PER_TENANT = """
    DELETE FROM webhooks_defaultsigningsecret WHERE id IN (
        SELECT id FROM (
            SELECT id, row_number() OVER (
                PARTITION BY tenant_id ORDER BY secret_rotated_at DESC NULLS LAST, id DESC) AS n
            FROM webhooks_defaultsigningsecret) ranked
        WHERE n > 1)
"""


def _tenant(null: bool) -> models.ForeignKey:
    return models.ForeignKey(
        null=null, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="accounts.tenant"
    )


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0002_tenants_and_roles"),
        ("webhooks", "0002_owners_are_accounts_api_keys"),
    ]

    operations = [
        migrations.AddField(model_name="webhookendpoint", name="tenant", field=_tenant(null=True)),
        migrations.AddField(model_name="webhookdelivery", name="tenant", field=_tenant(null=True)),
        migrations.AddField(
            model_name="defaultsigningsecret",
            name="tenant",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="accounts.tenant"
            ),
        ),
        migrations.RunSQL(TENANT_OF.format(table="webhooks_webhookendpoint"), migrations.RunSQL.noop),
        migrations.RunSQL(TENANT_OF.format(table="webhooks_webhookdelivery"), migrations.RunSQL.noop),
        migrations.RunSQL(TENANT_OF.format(table="webhooks_defaultsigningsecret"), migrations.RunSQL.noop),
        migrations.RunSQL(ONE_DEFAULT_SECRET_PER_TENANT, migrations.RunSQL.noop),
        migrations.AlterField(model_name="webhookendpoint", name="tenant", field=_tenant(null=False)),
        migrations.AlterField(model_name="webhookdelivery", name="tenant", field=_tenant(null=False)),
        migrations.AlterField(
            model_name="defaultsigningsecret",
            name="tenant",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.CASCADE, related_name="+", to="accounts.tenant"
            ),
        ),
        migrations.RemoveConstraint(model_name="defaultsigningsecret", name="one_default_secret_without_owner"),
        migrations.RemoveField(model_name="defaultsigningsecret", name="owner"),
        # An endpoint is its tenant's: it outlives the key that made it.
        migrations.AlterField(
            model_name="webhookendpoint",
            name="owner",
            field=models.ForeignKey(
                blank=True,
                help_text="The key that created it; the endpoint is its tenant's.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="webhook_endpoints",
                to="accounts.apikey",
            ),
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(fields=["tenant", "id"], name="webhook_delivery_tenant"),
        ),
    ]
