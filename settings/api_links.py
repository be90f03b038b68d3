"""OpenAPI links between the API's operations (what a created thing's id opens next), added to the
schema by a drf-spectacular post-processing hook. Clients and tools follow them: schemathesis's
stateful phase chains create → read → change → delete through them (tests/integration/test_api_fuzz.py).
Here, beside the URL conf, because links join operations of several apps."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.request import Request

from wire.json_types import JsonObject

if TYPE_CHECKING:  # drf-spectacular's schema machinery imports DRF's views: not at import time
    from drf_spectacular.generators import SchemaGenerator

# operationId of the creating call, its success status -> (path parameter, where the new id is in
# the answer, the operations it opens).
LINKS: dict[tuple[str, str], tuple[str, str, list[str]]] = {
    ("api_jobs_create", "201"): (
        "job_id",
        "/job_id",
        [
            "api_jobs_retrieve",
            "api_jobs_status_retrieve",
            "api_jobs_events_list",
            "api_jobs_cancel_create",
            "api_jobs_destroy",
            "api_jobs_result_create",
        ],
    ),
    ("api_workflows_create", "201"): (
        "workflow_id",
        "/workflow_id",
        ["api_workflows_retrieve", "api_workflows_status_retrieve", "api_workflows_cancel_create"],
    ),
    ("api_schedules_create", "201"): (
        "schedule_id",
        "/schedule/id",
        ["api_schedules_retrieve", "api_schedules_partial_update", "api_schedules_destroy"],
    ),
    ("api_webhooks_create", "201"): (
        "endpoint_id",
        "/webhook/id",
        [
            "api_webhooks_retrieve",
            "api_webhooks_partial_update",
            "api_webhooks_destroy",
            "api_webhooks_deliveries_list",
            "api_webhooks_rotate_secret_create",
            "api_webhooks_stats_retrieve",
        ],
    ),
    ("api_tenants_create", "201"): (
        "tenant_id",
        "/tenant/id",
        ["api_tenants_retrieve", "api_tenants_partial_update"],
    ),
    ("api_keys_create", "201"): ("key_id", "/api_key/id", ["api_keys_retrieve", "api_keys_revoke_create"]),
}


def add_links(
    result: JsonObject, generator: SchemaGenerator, request: Request | None, public: bool
) -> JsonObject:
    operations = {
        operation["operationId"]: operation
        for path_item in result.get("paths", {}).values()
        for operation in path_item.values()
    }
    for (creator, status), (parameter, pointer, targets) in LINKS.items():
        response = operations[creator]["responses"][status]
        response["links"] = {
            target: {"operationId": target, "parameters": {parameter: f"$response.body#{pointer}"}}
            for target in targets
        }
    return result
