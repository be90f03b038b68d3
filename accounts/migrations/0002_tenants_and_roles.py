"""Tenants, and a tenant and a role for every key.

Keys that existed before tenants keep what they could do: they become admins of the default tenant,
which owns everything that existed before. New keys are clients unless given another role."""

import django.db.models.deletion
from django.db import migrations, models

DEFAULT_TENANT_NAME = "default"  # accounts.models.DEFAULT_TENANT_NAME, as of this migration


def existing_keys_to_the_default_tenant(apps, schema_editor):
    Tenant = apps.get_model("accounts", "Tenant")
    ApiKey = apps.get_model("accounts", "ApiKey")
    tenant, _ = Tenant.objects.get_or_create(name=DEFAULT_TENANT_NAME)
    ApiKey.objects.filter(tenant__isnull=True).update(tenant=tenant, role="admin")


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="Tenant",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100, unique=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
        migrations.AddField(
            model_name="apikey",
            name="tenant",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="api_keys", to="accounts.tenant"
            ),
        ),
        migrations.AddField(
            model_name="apikey",
            name="role",
            field=models.CharField(
                choices=[
                    ("client", "client: submits and reads its tenant's work"),
                    ("operator", "operator: also runs the fleet and reads every tenant's jobs and dead letters"),
                    ("admin", "admin: also manages tenants and keys"),
                ],
                default="client",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="apikey",
            name="expires_at",
            field=models.DateTimeField(blank=True, help_text="Refused from then on; none: never.", null=True),
        ),
        migrations.AddField(
            model_name="apikey",
            name="revoked_at",
            field=models.DateTimeField(blank=True, help_text="Refused from then on.", null=True),
        ),
        migrations.RunPython(existing_keys_to_the_default_tenant, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="apikey",
            name="tenant",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="api_keys", to="accounts.tenant"
            ),
        ),
    ]
