from django.db import migrations, models


class Migration(migrations.Migration):
    """The delivery's token is its outbox lease's (outbox/leases.py), named as every transport names it."""

    dependencies = [("webhooks", "0007_endpoint_format_label")]

    operations = [
        migrations.RenameField("webhookdelivery", "dispatch_token", "lease_token"),
        migrations.AlterField(
            model_name='webhookdelivery',
            name='lease_token',
            field=models.UUIDField(blank=True, help_text='Only the sender holding this token may record an attempt.', null=True),
        ),
    ]
