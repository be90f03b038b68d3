"""API keys move here from `jobqueue`, keeping their table (`jobqueue_apikey`)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('jobqueue', '0010_notify_on_event_insert'),
    ]

    operations = [
        # The tables stay where they are: only Django's idea of which app owns them changes.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ApiKey',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=100, unique=True)),
                        ('prefix', models.CharField(help_text='First characters of the key, to recognise it.', max_length=16)),
                        ('key_hash', models.CharField(max_length=64, unique=True)),
                        ('is_active', models.BooleanField(default=True)),
                        ('can_complete_delegated', models.BooleanField(default=False, help_text='May complete jobs of types no worker runs (POST /api/jobs/{id}/result).')),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('last_used_at', models.DateTimeField(blank=True, null=True)),
                    ],
                    options={
                        'verbose_name': 'API key',
                        'db_table': 'jobqueue_apikey',
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
