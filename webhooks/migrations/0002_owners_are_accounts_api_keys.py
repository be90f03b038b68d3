"""API keys now belong to `accounts` (same table): point the owners there."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
        ('webhooks', '0001_initial'),
    ]

    operations = [
        # The tables stay where they are: only Django's idea of which app owns them changes.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='defaultsigningsecret',
                    name='owner',
                    field=models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='default_signing_secret', to='accounts.apikey'),
                ),
                migrations.AlterField(
                    model_name='webhookdelivery',
                    name='owner',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='accounts.apikey'),
                ),
                migrations.AlterField(
                    model_name='webhookendpoint',
                    name='owner',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='webhook_endpoints', to='accounts.apikey'),
                ),
            ],
            database_operations=[],
        ),
    ]
