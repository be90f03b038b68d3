from django.db import migrations, models


class Migration(migrations.Migration):
    """Notifications keep the outbox's state (outbox/models.py): the retry schedule counted from the
    attempt it began at, a lease token, the delivered time under the outbox's name."""

    dependencies = [("emprops", "0002_collections_and_speakers")]

    operations = [
        migrations.RenameField("empropsnotification", "notified_at", "delivered_at"),
        migrations.AddField(
            "empropsnotification",
            "schedule_start_attempt",
            models.PositiveIntegerField(
                default=0,
                help_text="attempt_count when the current retry schedule began (a redelivery restarts it).",
            ),
        ),
        migrations.RunSQL(
            "UPDATE emprops_empropsnotification SET schedule_start_attempt = attempt_count - attempts_in_schedule",
            migrations.RunSQL.noop,
        ),
        migrations.RemoveField("empropsnotification", "attempts_in_schedule"),
        migrations.AddField(
            model_name='empropsnotification',
            name='dead_letter_reason',
            field=models.CharField(blank=True, choices=[('exhausted', 'every scheduled attempt failed'), ('rejected', 'EmProps refused it for good (a 4xx other than 408 and 429)')], default='', help_text='Empty on rows dead-lettered before reasons were kept.', max_length=20),
        ),
        migrations.AddField(
            model_name='empropsnotification',
            name='last_attempt_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='empropsnotification',
            name='lease_token',
            field=models.UUIDField(blank=True, help_text='Only the sender holding this token may record an attempt.', null=True),
        ),
    ]
