"""Endpoints' header values were stored as sent: from now on they are encrypted like the signing
secrets (`webhooks.secrets`); this encrypts the ones already stored."""

from django.db import migrations, models


def encrypt_header_values(apps, schema_editor):
    from webhooks import secrets

    WebhookEndpoint = apps.get_model("webhooks", "WebhookEndpoint")
    for endpoint in WebhookEndpoint.objects.exclude(headers={}):
        endpoint.headers = secrets.encrypt_values(endpoint.headers)
        endpoint.save(update_fields=["headers"])


class Migration(migrations.Migration):

    dependencies = [("webhooks", "0003_tenants")]

    operations = [
        migrations.AlterField(
            model_name="webhookendpoint",
            name="headers",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="Extra request headers: names, and values encrypted (`request_headers`).",
            ),
        ),
        migrations.RunPython(encrypt_header_values, migrations.RunPython.noop),
    ]
