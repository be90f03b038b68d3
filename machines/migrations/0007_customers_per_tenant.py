"""Customer ids became each tenant's own: a dedication names whose customers it means. Tokens and
credentials that named customers mean their owner's (the one tenant that held those ids until now);
a worker dedicated to customers means its credential's; the rest, the default tenant's."""

import django.db.models.deletion
from django.db import migrations, models


def keep_dedications(apps, schema_editor):
    Customer = apps.get_model("accounts", "Customer")
    Tenant = apps.get_model("accounts", "Tenant")
    JoinToken = apps.get_model("machines", "JoinToken")
    WorkerCredential = apps.get_model("machines", "WorkerCredential")
    Worker = apps.get_model("machines", "Worker")
    owners = dict(Customer.objects.values_list("customer_id", "tenant_id"))
    default = Tenant.objects.filter(name="default").values_list("pk", flat=True).first()
    for model in (JoinToken, WorkerCredential):
        for row in model.objects.exclude(customers=[]):
            row.customers_tenant_id = next((owners[c] for c in row.customers if c in owners), default)
            row.save(update_fields=["customers_tenant"])
    credentials = dict(WorkerCredential.objects.values_list("worker_id", "customers_tenant_id"))
    for worker in Worker.objects.exclude(customer_allowlist=[]):
        worker.customers_tenant_id = credentials.get(worker.id) or default
        worker.save(update_fields=["customers_tenant"])


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0005_customers_per_tenant'),
        ('machines', '0006_join_tokens_single_use'),
    ]

    operations = [
        migrations.AddField(
            model_name='jointoken',
            name='customers_tenant',
            field=models.ForeignKey(blank=True, help_text="Whose customers those are (customer ids are each tenant's own); none: the default tenant's.", null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='accounts.tenant'),
        ),
        migrations.AddField(
            model_name='worker',
            name='customers_tenant',
            field=models.ForeignKey(blank=True, help_text="Whose customers the allow-list names (its credential's tenant): it serves no other's.", null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='accounts.tenant'),
        ),
        migrations.AddField(
            model_name='workercredential',
            name='customers_tenant',
            field=models.ForeignKey(blank=True, help_text="Whose customers those are (customer ids are each tenant's own); none: the default tenant's.", null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='accounts.tenant'),
        ),
        migrations.RunPython(keep_dedications, migrations.RunPython.noop),
    ]
