"""Management commands that scripts drive."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import ApiKey


@pytest.mark.django_db
def test_create_api_key_prints_a_working_key_once_and_stores_only_its_hash(settings):
    settings.USES_EMBEDDED_POSTGRES = False  # the test database is already running
    out = io.StringIO()

    call_command("create_api_key", "script-client", stdout=out)

    raw_key = out.getvalue().strip()
    stored = ApiKey.objects.get(name="script-client")
    assert raw_key.startswith("jq_")
    assert stored.key_hash == ApiKey.hash_key(raw_key)
    assert raw_key not in stored.key_hash
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_api_key", "script-client", stdout=io.StringIO())
