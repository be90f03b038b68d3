"""The runbook's backup and restore (docs/operations.md), on the embedded server: pg_dump of a live
database, pg_restore into an empty server, and the system reads its data back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from devstack.embedded import EmbeddedPostgres, free_port, postgres_tool
from tests.conftest import ROOT


def test_a_dump_restores_into_an_empty_server_with_every_row(private_postgres, tmp_path):
    env = {**os.environ, "DATABASE_URL": private_postgres.url}
    key = subprocess.run(
        [sys.executable, "manage.py", "create_api_key", "backed-up"],
        env=env, cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    dump = tmp_path / "jobqueue.dump"
    subprocess.run(
        [postgres_tool("pg_dump"), "--format=custom", f"--file={dump}", private_postgres.url], check=True
    )

    folder = Path(tempfile.mkdtemp(prefix="jq-pg-restore-"))
    restored = EmbeddedPostgres(folder, free_port())
    try:
        url = restored.start()
        subprocess.run(
            [postgres_tool("pg_restore"), "--no-owner", "--exit-on-error", f"--dbname={url}", str(dump)],
            check=True,
        )
        count = "SELECT count(*) FROM {}"
        from accounts.models import ApiKey, Tenant

        tables = ("django_migrations", ApiKey._meta.db_table, Tenant._meta.db_table)
        for table in tables:
            assert private_postgres.scalar(count.format(table)) == _scalar(url, count.format(table)), table
        # The restored database serves the key the original issued.
        check = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--check"],
            check=False,
            env={**env, "DATABASE_URL": url},
            cwd=ROOT,
        )
        assert check.returncode == 0  # nothing left to migrate: the schema came back whole
        digest = f"SELECT count(*) FROM {ApiKey._meta.db_table} WHERE name = 'backed-up' AND is_active"
        assert _scalar(url, digest) == 1 and key
    finally:
        restored.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _scalar(url: str, query: str) -> object:
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute(query).fetchone()[0]
