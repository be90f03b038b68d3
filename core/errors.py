"""The base of every domain error: what the API envelope needs to answer it (docs/architecture.md)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """The operation failed."""

    code = "error"
    http_status = 400
    retry_after_seconds: int | None = None  # sent as Retry-After: when trying again may succeed

    def __init__(
        self, message: str | None = None, *, field: str | None = None, code: str | None = None, **details: Any
    ) -> None:
        # Each subclass's docstring is its default message.
        self.message: str = message or self.__doc__ or self.code
        super().__init__(self.message)
        self.field = field  # the request field at fault, when there is one
        if code is not None:
            self.code = code
        self.details = details


class NotFound(DomainError):
    """Not found."""

    code = "not_found"
    http_status = 404


class Conflict(DomainError):
    """The request conflicts with the current state."""

    code = "conflict"
    http_status = 409


class TooManyRequests(DomainError):
    """Too many requests; retry later."""

    code = "too_many_requests"
    http_status = 429
    retry_after_seconds = 1


class BrokerUnavailable(DomainError):
    """The broker (Redis) did not answer; nothing changed. Try again."""

    code = "broker_unavailable"
    http_status = 503
    retry_after_seconds = 5
