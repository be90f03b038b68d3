"""Customer ids already used by jobs belong to the tenant whose job used one first (before tenants,
every job was the default tenant's)."""

from django.db import migrations

CLAIM_USED_CUSTOMER_IDS = """
    INSERT INTO accounts_customer (customer_id, tenant_id, created_at)
    SELECT DISTINCT ON (customer_id) customer_id, tenant_id, now()
    FROM jobqueue_job WHERE customer_id IS NOT NULL
    ORDER BY customer_id, created_at, id
    ON CONFLICT DO NOTHING
"""


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0003_quotas_and_customers"),
        ("jobqueue", "0014_schedule_last_error"),
    ]

    operations = [migrations.RunSQL(CLAIM_USED_CUSTOMER_IDS, migrations.RunSQL.noop)]
