"""What a connector is: a small class that runs one kind of job on some engine."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from wire.job_spec import JobSpec
from wire.json_types import JsonObject, JsonValue
from wire.reports import ErrorClass, attempt_error

SLEEP_SLICE_S = 0.1  # how often `JobContext.sleep` looks at cancellation and the deadline


class ConnectorError(Exception):
    """The connector could not run the job."""

    code = "CONNECTOR_ERROR"
    error_class: ErrorClass = "transient"

    def __init__(self, message: str = "", code: str | None = None, details: JsonObject | None = None) -> None:
        super().__init__(message or self.__doc__)
        self.message = message or self.__doc__ or ""
        if code:
            self.code = code
        self.details = details or {}

    def as_report(self) -> JsonObject:
        return attempt_error(self.code, self.message, self.error_class, self.details or None)


class TransientError(ConnectorError):
    """A failure that may not happen again (network, timeout, out of GPU memory): retried."""

    code = "TRANSIENT_ERROR"


class PermanentError(ConnectorError):
    """A failure that will happen again (invalid input, unsupported request): not retried."""

    code = "PERMANENT_ERROR"
    error_class: ErrorClass = "permanent"


class JobTimedOut(TransientError):
    """The job ran past its timeout."""

    code = "TIMEOUT"


class JobCancelled(Exception):
    """The job's cancellation was requested; the connector stopped."""


@dataclass
class JobContext:
    """One attempt of one job, as a connector sees it."""

    spec: JobSpec
    report_progress: Callable[[int, str], None]
    is_cancelled: Callable[[], bool]
    deadline: float  # time.monotonic() value
    # Set by the runner at the soft time limit, to wake a connector waiting in `sleep`.
    interrupted: threading.Event = field(default_factory=threading.Event)

    @property
    def payload(self) -> JsonObject:
        return self.spec.payload

    @property
    def inputs(self) -> list[JsonObject]:
        """Results of the jobs this one depends on, in input order: [{step_index, name, job_id, result}]."""
        inputs: list[JsonObject] = self.spec.inputs or []
        return inputs

    @property
    def attempt(self) -> int:
        return self.spec.attempt

    def checkpoint(self) -> None:
        """Raise if the job was cancelled or ran out of time; call it between units of work."""
        if self.is_cancelled():
            raise JobCancelled()
        if time.monotonic() > self.deadline or self.interrupted.is_set():
            raise JobTimedOut(f"job exceeded its timeout of {self.spec.timeout_seconds}s")

    def sleep(self, seconds: float) -> None:
        """Wait like `time.sleep`, but raise as soon as the job is cancelled or runs out of time."""
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            self.interrupted.wait(min(left, SLEEP_SLICE_S))
            self.checkpoint()

    def time_left(self) -> float:
        """Seconds until the soft time limit: a bound for the connector's own I/O timeouts."""
        return max(0.0, self.deadline - time.monotonic())


class Connector:
    """Base class. Subclasses set `job_types` and implement `run`."""

    name: ClassVar[str]
    job_types: ClassVar[tuple[str, ...]]

    def health(self) -> bool:
        return True

    def run(self, job: JobContext) -> JsonValue:
        raise NotImplementedError
