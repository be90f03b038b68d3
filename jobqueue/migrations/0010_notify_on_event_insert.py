"""Every transaction that writes events notifies `jobqueue_events` as it commits (once per
statement; Postgres folds identical notifications of one transaction into one), so the event log's
consumers wake at once instead of polling."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION jobqueue_notify_events() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('jobqueue_events', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER jobqueue_event_notify
    AFTER INSERT ON jobqueue_event
    FOR EACH STATEMENT EXECUTE FUNCTION jobqueue_notify_events();
"""

DROP = """
DROP TRIGGER IF EXISTS jobqueue_event_notify ON jobqueue_event;
DROP FUNCTION IF EXISTS jobqueue_notify_events();
"""


class Migration(migrations.Migration):
    dependencies = [("jobqueue", "0009_apikey_can_complete_delegated")]

    operations = [migrations.RunSQL(CREATE, DROP)]
