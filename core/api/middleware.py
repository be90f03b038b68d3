"""Correlation ids: taken from `x-correlation-id` or generated, echoed on the response."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest
from django.http.response import HttpResponseBase

HEADER = "x-correlation-id"
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


class CorrelationIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        supplied = request.headers.get(HEADER, "")
        request.correlation_id = supplied  # type: ignore[attr-defined]  # read by views if _VALID.match(supplied) else uuid.uuid4().hex
        response = self.get_response(request)
        response[HEADER] = request.correlation_id  # type: ignore[attr-defined]
        return response
