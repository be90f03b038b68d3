"""The job spec: what the control plane sends a worker, on the worker's own queue, to run one attempt
(everything but database-only fields, and the attempt's lease token, which its reports carry)."""

from __future__ import annotations

import msgspec

from wire.json_types import JsonObject, JsonValue


class JobSpec(msgspec.Struct, kw_only=True, frozen=True):
    job_id: str
    attempt: int
    lease: str
    type: str
    payload: JsonObject = {}
    ctx: JsonObject | None = None
    requirements: JsonObject = {}
    timeout_seconds: float | None = None  # whole seconds from the control plane
    priority: int = 0
    workflow_id: str | None = None
    metadata: JsonObject = {}
    inputs: JsonValue = None

    def as_message(self) -> JsonObject:
        """The spec as the job message carries it (JSON)."""
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


def read_spec(message: JsonValue) -> JobSpec:
    """A job message's spec, checked (msgspec.ValidationError when it is not one)."""
    return msgspec.convert(message, JobSpec)
