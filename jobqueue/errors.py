"""Domain exceptions; each docstring is its default message."""

from __future__ import annotations


class JobError(Exception):
    """A job operation failed."""

    code = "job_error"

    def __init__(self, message: str | None = None, **details) -> None:
        super().__init__(message or self.__doc__)
        self.message = message or self.__doc__
        self.details = details


class JobNotFound(JobError):
    """No such job."""

    code = "not_found"


class JobAlreadyFinished(JobError):
    """The job already reached a terminal state and cannot change."""

    code = "job_already_finished"


class DeadLetterNotFound(JobError):
    """No such dead letter."""

    code = "not_found"


class DeadLetterAlreadyRequeued(JobError):
    """This dead letter was already requeued."""

    code = "dead_letter_already_requeued"
