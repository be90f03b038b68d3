"""API keys move to `accounts` and the event log to `events`, their tables unchanged; their content
types follow them, so admin history and permissions stay attached."""

import django.db.models.deletion
from django.db import migrations, models

MOVED = {"apikey": "accounts", "event": "events", "eventrelaycursor": "events"}


def _relabel(apps, schema_editor, old_of, new_of) -> None:
    content_type = apps.get_model("contenttypes", "ContentType")
    for model, app in MOVED.items():
        if not content_type.objects.filter(app_label=new_of(app), model=model).exists():
            content_type.objects.filter(app_label=old_of(app), model=model).update(app_label=new_of(app))


def _move_content_types(apps, schema_editor) -> None:
    _relabel(apps, schema_editor, old_of=lambda app: "jobqueue", new_of=lambda app: app)


def _restore_content_types(apps, schema_editor) -> None:
    _relabel(apps, schema_editor, old_of=lambda app: app, new_of=lambda app: "jobqueue")


class Migration(migrations.Migration):

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('accounts', '0001_initial'),
        ('jobqueue', '0010_notify_on_event_insert'),
        ('webhooks', '0002_owners_are_accounts_api_keys'),
        ('workflows', '0002_api_key_in_accounts'),
    ]

    operations = [
        # The tables stay where they are: only Django's idea of which app owns them changes.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='job',
                    name='api_key',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='jobs', to='accounts.apikey'),
                ),
                migrations.AlterField(
                    model_name='jobschedule',
                    name='api_key',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='schedules', to='accounts.apikey'),
                ),
                migrations.DeleteModel(
                    name='Event',
                ),
                migrations.DeleteModel(
                    name='EventRelayCursor',
                ),
                migrations.DeleteModel(
                    name='ApiKey',
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(_move_content_types, _restore_content_types),
    ]
