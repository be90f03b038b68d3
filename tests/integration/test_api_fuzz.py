"""Every operation of the API, fuzzed from its own OpenAPI schema (schemathesis), valid and invalid
inputs alike, one operation at a time and then in chains that follow the schema's links (create,
read, change, delete): no 5xx, every status documented, every body shaped as documented. As an admin,
so that no operation is out of reach."""

from __future__ import annotations

import ipaddress

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from settings.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema?format=json", application)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 12
SCENARIOS = 25
STEPS_PER_SCENARIO = 6
FUZZ_SETTINGS = {"deadline": None, "suppress_health_check": list(HealthCheck), "derandomize": True}


@pytest.fixture
def admin_key(transactional_db, monkeypatch, emprops_standin, settings):
    from accounts.models import ApiKey, Role
    from webhooks import dns, ssrf

    # Loopback only: the generated webhook URLs name hosts that are never looked up (the guard then
    # judges the address literal alone, as it does for a name that does not resolve).
    def literal_only(host: str, port: int, tenant_id: int | None = None) -> list[str]:
        try:
            return [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            raise dns.Unresolved(f"{host} is not looked up in tests") from None

    monkeypatch.setattr(ssrf, "resolve", literal_only)
    # The EmProps routes talk to a real (stand-in) EmProps, as a configured install's do.
    settings.EMPROPS_API_URL, settings.EMPROPS_API_KEY = emprops_standin.url, emprops_standin.api_key
    return ApiKey.issue("fuzzer", role=Role.ADMIN)[1]


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, **FUZZ_SETTINGS)
def test_every_operation_answers_what_its_schema_says(case, admin_key):
    case.call_and_validate(headers={"x-api-key": admin_key}, checks=CHECKS)


@pytest.mark.django_db(transaction=True)
def test_chains_of_operations_following_the_schemas_links_answer_what_the_schema_says(admin_key):
    # The fleet's credentials are fuzzed one operation at a time only: their lists feed links whose
    # targets depend on what earlier scenarios made, which Hypothesis's replay cannot reproduce.
    chained = schema.exclude(path_regex=r"^/api/(join-tokens|worker-credentials|fleet/)")

    class Chains(chained.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case):
            return {"headers": {"x-api-key": admin_key}}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS)

        def teardown(self):
            # Each scenario starts from the state the first did (the fuzzer's key and its tenant):
            # lists feed links, and a scenario Hypothesis runs again must draw the same choices.
            _empty_all_but_the_fuzzers_key()

    # Reported as found, not shrunk: a scenario replayed against what the earlier ones left in the
    # database draws other choices, and Hypothesis would report that instead of the failure.
    _empty_all_but_the_fuzzers_key()
    Chains.run(
        settings=settings(
            max_examples=SCENARIOS,
            stateful_step_count=STEPS_PER_SCENARIO,
            phases=[Phase.explicit, Phase.generate],
            **FUZZ_SETTINGS,
        )
    )


def _empty_all_but_the_fuzzers_key() -> None:
    from django.db import connection

    from accounts.models import ApiKey, Tenant

    kept = {ApiKey._meta.db_table, Tenant._meta.db_table, "django_migrations", "django_content_type"}
    tables = [
        table
        for table in connection.introspection.table_names()
        if table not in kept and not table.startswith("auth_")
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"TRUNCATE {', '.join(connection.ops.quote_name(t) for t in tables)} RESTART IDENTITY CASCADE"
        )
        fuzzer = ApiKey.objects.get(name="fuzzer")
        ApiKey.objects.exclude(pk=fuzzer.pk).delete()
        Tenant.objects.exclude(pk__in=[fuzzer.tenant_id, Tenant.default().pk]).delete()
        # Ids the next scenario is given are the ones the first was: they show in answers links read.
        for model in (ApiKey, Tenant):
            table = model._meta.db_table
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
