"""The job spec: what the control plane sends a worker, on the worker's own queue, to run one attempt
(everything but database-only fields, and the attempt's lease token, which its reports carry)."""

from __future__ import annotations

from typing import Any

import msgspec


class JobSpec(msgspec.Struct, kw_only=True, frozen=True):
    job_id: str
    attempt: int
    lease: str
    type: str
    payload: dict[str, Any] = {}
    ctx: dict[str, Any] | None = None
    requirements: dict[str, Any] = {}
    timeout_seconds: float | None = None  # whole seconds from the control plane
    priority: int = 0
    workflow_id: str | None = None
    metadata: dict[str, Any] = {}
    inputs: Any = None

    def as_message(self) -> dict[str, Any]:
        """The spec as the job message carries it (JSON)."""
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


def read_spec(message: Any) -> JobSpec:
    """A job message's spec, checked (msgspec.ValidationError when it is not one)."""
    return msgspec.convert(message, JobSpec)
