"""Job reports: what a GPU worker says about an attempt it was given, on its control lane.

Each carries the attempt's lease token, which only the worker given the attempt received (on its own
queue): the control plane applies a report only when the lease is the attempt's and was given to
the worker whose lane the report came from.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec
from msgspec import Meta

from wire import names
from wire.bounds import (
    MAX_ERROR_CODE,
    MAX_ERROR_MESSAGE,
    Attempt,
    JobId,
    Lease,
    Milliseconds,
    ShortText,
    check_depth,
)
from wire.json_types import JsonObject, JsonValue

ErrorClass = Literal["transient", "permanent"]


class AttemptError(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Why an attempt failed: `transient` errors are retried, `permanent` are not."""

    code: Annotated[str, Meta(max_length=MAX_ERROR_CODE)]
    message: Annotated[str, Meta(max_length=MAX_ERROR_MESSAGE)]
    error_class: ErrorClass = msgspec.field(name="class", default="transient")
    details: JsonObject | None = None

    def __post_init__(self) -> None:
        check_depth(self.details, "error.details")


def attempt_error(
    code: str, message: str, error_class: ErrorClass = "transient", details: JsonObject | None = None
) -> JsonObject:
    """An attempt's error as reports carry it and the control plane stores it (messages cut to the
    wire's bound rather than refused for their length)."""
    error: JsonObject = {
        "code": code[:MAX_ERROR_CODE],
        "message": message[:MAX_ERROR_MESSAGE],
        "class": error_class,
    }
    if details is not None:
        error["details"] = details
    return error


def normalise_error(error: JsonObject | None) -> JsonObject:
    """Any error (a connector's, a client's) in the one shape: a known class, bounded code and message,
    details only when they are an object."""
    error = dict(error or {})
    error_class: ErrorClass = "permanent" if error.get("class") == "permanent" else "transient"
    details = error["details"] if isinstance(error.get("details"), dict) else None
    return attempt_error(
        str(error.get("code") or "WORKER_ERROR"), str(error.get("message") or ""), error_class, details
    )


class JobReport(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    task: ClassVar[str]
    job_id: JobId
    attempt: Attempt
    lease: Lease


class Started(JobReport, kw_only=True, frozen=True):
    task: ClassVar[str] = names.REPORT_STARTED_TASK
    running_for_ms: Milliseconds = 0


class Progress(JobReport, kw_only=True, frozen=True):
    task: ClassVar[str] = names.REPORT_PROGRESS_TASK
    progress: Attempt
    stage: ShortText = ""

    def __post_init__(self) -> None:
        if self.progress > 100:
            raise ValueError("progress is a percentage, 0 to 100")


class FinalReport(JobReport, kw_only=True, frozen=True):
    """A report that ends its attempt; `runtime_ms` (the worker's monotonic clock) dates the start of
    a job that finished before its `started` report was due."""

    runtime_ms: Milliseconds | None = None


class Succeeded(FinalReport, kw_only=True, frozen=True):
    task: ClassVar[str] = names.REPORT_SUCCEEDED_TASK
    result: JsonValue = None

    def __post_init__(self) -> None:
        check_depth(self.result, "result")


class Failed(FinalReport, kw_only=True, frozen=True):
    task: ClassVar[str] = names.REPORT_FAILED_TASK
    error: AttemptError


class Cancelled(FinalReport, kw_only=True, frozen=True):
    task: ClassVar[str] = names.REPORT_CANCELLED_TASK


class HandedBack(FinalReport, kw_only=True, frozen=True):
    """A stopping worker gives a job back unfinished: it runs again elsewhere, not counted as a try."""

    task: ClassVar[str] = names.REPORT_HANDED_BACK_TASK


REPORTS: tuple[type[JobReport], ...] = (Started, Progress, Succeeded, Failed, Cancelled, HandedBack)
