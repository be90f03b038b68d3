"""The event log moves here from `jobqueue`, keeping its tables, indexes and trigger."""

import core.db
import django.db.models.functions.datetime
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
                    name='EventRelayCursor',
                    fields=[
                        ('name', models.CharField(max_length=50, primary_key=True, serialize=False)),
                        ('last_txid', models.BigIntegerField(default=0)),
                        ('last_id', models.BigIntegerField(default=0)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        'db_table': 'jobqueue_eventrelaycursor',
                    },
                ),
                migrations.CreateModel(
                    name='Event',
                    fields=[
                        ('id', models.BigAutoField(primary_key=True, serialize=False)),
                        ('type', models.CharField(max_length=64)),
                        ('version', models.PositiveSmallIntegerField(default=1)),
                        ('created_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
                        ('job_id', models.UUIDField(blank=True, null=True)),
                        ('workflow_id', models.CharField(blank=True, max_length=100, null=True)),
                        ('machine_id', models.CharField(blank=True, max_length=200, null=True)),
                        ('worker_id', models.CharField(blank=True, max_length=200, null=True)),
                        ('correlation_id', models.CharField(blank=True, default='', max_length=100)),
                        ('causation_id', models.BigIntegerField(blank=True, null=True)),
                        ('payload', models.JSONField(default=dict)),
                        ('txid', models.BigIntegerField(db_default=core.db.CurrentTransactionId(), editable=False)),
                    ],
                    options={
                        'db_table': 'jobqueue_event',
                        'indexes': [models.Index(fields=['job_id', 'id'], name='event_job'), models.Index(fields=['workflow_id', 'id'], name='event_workflow'), models.Index(fields=['txid', 'id'], name='event_relay_order'), models.Index(fields=['type', 'id'], name='event_type'), models.Index(fields=['created_at'], name='event_created')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
