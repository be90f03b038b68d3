"""A client generated from the OpenAPI schema (openapi-python-client) works: it submits, reads and
lists jobs and reads an error, each answer parsed into the schema's own models. Its requests go to
the real WSGI application, in process."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.core.management import call_command

from settings.wsgi import application

PACKAGE = "jobqueue_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> object:
    folder = tmp_path_factory.mktemp("generated")
    schema = folder / "schema.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(schema))
    bin_dir = Path(sys.executable).parent  # the generator formats its output with the venv's ruff
    command = ["generate", "--path", str(schema), "--output-path", str(folder / PACKAGE), "--meta", "none"]
    done = subprocess.run(
        [str(bin_dir / "openapi-python-client"), *command],
        cwd=folder,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0 and "WARNING" not in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))


@pytest.mark.django_db(transaction=True)
def test_a_client_generated_from_the_schema_submits_reads_and_lists_jobs(generated, api_key):
    from jobqueue_client import AuthenticatedClient
    from jobqueue_client.api.api import api_jobs_create, api_jobs_list, api_jobs_retrieve
    from jobqueue_client.models import ErrorEnvelope, JobSubmitRequest

    client = AuthenticatedClient(
        base_url="http://testserver",
        token=api_key[1],
        prefix="",
        auth_header_name="x-api-key",
        httpx_args={"transport": httpx.WSGITransport(app=application)},
    )

    submitted = api_jobs_create.sync(client=client, body=JobSubmitRequest(type_="simulation", priority=70))
    assert submitted.success and submitted.created and submitted.status == "pending"

    read = api_jobs_retrieve.sync(client=client, job_id=submitted.job_id)
    assert (read.job.id, read.job.type_, read.job.priority) == (submitted.job_id, "simulation", 70)

    listed = api_jobs_list.sync(client=client, limit=10)
    assert [job.id for job in listed.jobs] == [submitted.job_id]
    assert (listed.pagination.total, listed.pagination.has_more) == (1, False)

    missing = api_jobs_retrieve.sync_detailed(client=client, job_id="00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and isinstance(missing.parsed, ErrorEnvelope)
    assert missing.parsed.error.code == "not_found"
