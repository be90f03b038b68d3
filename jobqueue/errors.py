"""Domain exceptions; each docstring is its default message."""

from __future__ import annotations


class JobError(Exception):
    """A job operation failed."""

    code = "job_error"
    http_status = 400

    def __init__(
        self, message: str | None = None, *, field: str | None = None, code: str | None = None, **details
    ) -> None:
        super().__init__(message or self.__doc__)
        self.message = message or self.__doc__
        self.field = field  # the request field at fault, when there is one
        if code is not None:
            self.code = code
        self.details = details


class JobNotFound(JobError):
    """No such job."""

    code = "not_found"
    http_status = 404


class JobAlreadyFinished(JobError):
    """The job already reached a terminal state and cannot change."""

    code = "job_already_finished"
    http_status = 409


class DeadLetterNotFound(JobError):
    """No such dead letter."""

    code = "not_found"
    http_status = 404


class DeadLetterAlreadyRequeued(JobError):
    """This dead letter was already requeued."""

    code = "dead_letter_already_requeued"
    http_status = 409


class JobConflict(JobError):
    """The request conflicts with the current state."""

    code = "conflict"
    http_status = 409
