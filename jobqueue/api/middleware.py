"""Correlation ids: taken from `x-correlation-id` or generated, echoed on the response."""

from __future__ import annotations

import re
import uuid

HEADER = "x-correlation-id"
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


class CorrelationIdMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        supplied = request.headers.get(HEADER, "")
        request.correlation_id = supplied if _VALID.match(supplied) else uuid.uuid4().hex
        response = self.get_response(request)
        response[HEADER] = request.correlation_id
        return response
