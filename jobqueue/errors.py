"""Errors of job operations; each docstring is its default message."""

from __future__ import annotations

from core.errors import Conflict, NotFound


class JobNotFound(NotFound):
    """No such job."""


class JobAlreadyFinished(Conflict):
    """The job already reached a terminal state and cannot change."""

    code = "job_already_finished"


class DeadLetterNotFound(NotFound):
    """No such dead letter."""


class DeadLetterAlreadyRequeued(Conflict):
    """This dead letter was already requeued."""

    code = "dead_letter_already_requeued"


class JobConflict(Conflict):
    """The request conflicts with the current state."""


class JobIdTaken(Conflict):
    """This tenant has a job with this id already (another client's, perhaps): choose another id."""

    code = "job_id_taken"
