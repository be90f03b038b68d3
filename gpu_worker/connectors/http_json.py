"""A model server of your own, spoken to as JSON over HTTP: the job goes in a POST, the JSON answer
is its result. Non-2xx answers map to transient (408/409/429/5xx) or permanent (other 4xx) errors.

Configured by HTTP_CONNECTOR_URL, HTTP_CONNECTOR_JOB_TYPES (comma-separated; default "http") and
optionally HTTP_CONNECTOR_HEALTH_URL (GET, 2xx = healthy).
"""

from __future__ import annotations

import os
from typing import ClassVar

from gpu_worker.connectors.base import Connector, JobContext, PermanentError
from gpu_worker.connectors.engine_http import check, engine_errors, engine_session, timeout_for
from wire.json_types import JsonValue

ENGINE = "http"


class HttpJsonConnector(Connector):
    name = "http"
    job_types: ClassVar[tuple[str, ...]] = ("http",)

    def __init__(
        self, url: str | None = None, job_types: tuple[str, ...] | None = None, health_url: str | None = None
    ):
        self.url = url or os.environ.get("HTTP_CONNECTOR_URL", "")
        configured = os.environ.get("HTTP_CONNECTOR_JOB_TYPES", "")
        # Per instance: one server may run the job types it is configured for.
        self.job_types = (  # type: ignore[misc]
            job_types or tuple(t.strip() for t in configured.split(",") if t.strip()) or ("http",)
        )
        self.health_url = (
            health_url if health_url is not None else os.environ.get("HTTP_CONNECTOR_HEALTH_URL", "")
        )
        self.session = engine_session()

    def health(self) -> bool:
        if not self.url:
            raise RuntimeError("HTTP_CONNECTOR_URL is not set")
        if self.health_url:
            with engine_errors(ENGINE):
                check(self.session.get(self.health_url, timeout=5), ENGINE)
        return True

    def run(self, job: JobContext) -> JsonValue:
        if not self.url:
            raise PermanentError("HTTP_CONNECTOR_URL is not set on this worker", code="NOT_CONFIGURED")
        request = {
            "job_id": job.spec.job_id,
            "attempt": job.attempt,
            "type": job.spec.type,
            "payload": job.payload,
            "inputs": job.inputs,
        }
        with engine_errors(ENGINE):
            response = check(self.session.post(self.url, json=request, timeout=timeout_for(job)), ENGINE)
        try:
            return response.json()
        except ValueError as exc:
            raise PermanentError(
                "the model server answered something other than JSON", code="HTTP_NOT_JSON"
            ) from exc
