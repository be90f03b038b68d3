"""Request middleware of the API: correlation ids (taken from `x-correlation-id` or generated, echoed
on the response, and carried by every job and event the request creates), and URLs refused whole."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase

from core.api.errors import error_body

HEADER = "x-correlation-id"
_ATTRIBUTE = "correlation_id"
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


class CorrelationIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        supplied = request.headers.get(HEADER, "")
        value = supplied if _VALID.match(supplied) else uuid.uuid4().hex
        setattr(request, _ATTRIBUTE, value)
        response = self.get_response(request)
        response[HEADER] = value
        return response


def correlation_id(request: Any) -> str:
    """The request's correlation id (a Django or DRF request; set by the middleware)."""
    return str(getattr(request, _ATTRIBUTE, ""))


class RefuseNulInUrls:
    """A NUL character in the path or the query (`/api/machines/%00`, `?type=%00`) is a 400: no id,
    name or filter value may hold one, and Postgres refuses it in text."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if "\x00" in request.path or any(
            "\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()
        ):
            body = {"success": False, "error": error_body("invalid_url", "the URL contains a NUL character")}
            return JsonResponse(body, status=400)
        return self.get_response(request)
