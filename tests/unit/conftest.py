"""The unit tier starts no server: a test here that asks for Postgres, Redis or a process fails."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def services():
    pytest.fail("unit tests use no servers; move this test to tests/integration")


@pytest.fixture(scope="session")
def django_db_setup():
    pytest.fail("unit tests use no database; move this test to tests/integration")
