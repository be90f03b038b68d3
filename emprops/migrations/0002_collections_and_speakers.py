"""Collections belong to a tenant; keys speak for EmProps only when allowed. Existing installs keep
working: a key that already started EmProps workflows may go on, and a collection already generated
here belongs to the tenant of its generations."""

import uuid

import django.db.models.deletion
import django.db.models.functions.datetime
from django.db import migrations, models


def keep_what_worked(apps, schema_editor):
    Workflow = apps.get_model("workflows", "Workflow")
    ApiKey = apps.get_model("accounts", "ApiKey")
    EmpropsCollection = apps.get_model("emprops", "EmpropsCollection")
    emprops = Workflow.objects.filter(source="emprops")
    ApiKey.objects.filter(pk__in=emprops.exclude(api_key=None).values("api_key")).update(speaks_for_emprops=True)
    owners = {}
    for collection_id, tenant_id in emprops.exclude(metadata__collection_id=None).order_by("created_at").values_list(
        "metadata__collection_id", "tenant_id"
    ):
        try:
            owners.setdefault(uuid.UUID(str(collection_id)), tenant_id)  # the first tenant to generate it
        except ValueError:
            continue
    EmpropsCollection.objects.bulk_create(
        [EmpropsCollection(collection_id=c, tenant_id=t) for c, t in owners.items()], ignore_conflicts=True
    )


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_emprops_speakers'),
        ('emprops', '0001_notifications'),
        ('workflows', '0004_workflow_user_notified_at'),
    ]

    operations = [
        migrations.CreateModel(
            name='EmpropsCollection',
            fields=[
                ('collection_id', models.UUIDField(primary_key=True, serialize=False)),
                ('created_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.tenant')),
            ],
        ),
        migrations.RunPython(keep_what_worked, migrations.RunPython.noop),
    ]
