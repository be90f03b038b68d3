"""Request middleware of the API: correlation ids (taken from `x-correlation-id` or generated, echoed
on the response, and carried by every job and event the request creates), and URLs refused whole."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest
from django.http.response import HttpResponseBase

from core.api.errors import json_error_response
from wire import logs

HEADER = "x-correlation-id"
API_PREFIX = "/api/"
_ATTRIBUTE = "correlation_id"
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


class CorrelationIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        supplied = request.headers.get(HEADER, "")
        value = supplied if _VALID.match(supplied) else uuid.uuid4().hex
        setattr(request, _ATTRIBUTE, value)
        # A reused thread starts clean; the context stays until the next request, so that Django's own
        # line about a failed request (logged after the middlewares) still says which request it was.
        logs.fresh_context(correlation_id=value)
        response = self.get_response(request)
        response[HEADER] = value
        return response


def correlation_id(request: HttpRequest) -> str:
    """The request's correlation id (a Django or DRF request; set by the middleware)."""
    return str(getattr(request, _ATTRIBUTE, ""))


class RefuseBadUrls:
    """A NUL character in the path or the query (`/api/machines/%00`, `?type=%00`) is a 400: no id,
    name or filter value may hold one, and Postgres refuses it in text. So is an API query parameter
    given without a value (`?limit=`, `?status=`): the schema allows none (OpenAPI's
    `allowEmptyValue` is false), and taking it as absent would hide the client's mistake."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        pairs = list(request.GET.lists())
        if "\x00" in request.path or any("\x00" in key or "\x00" in "".join(values) for key, values in pairs):
            return json_error_response(400, "invalid_url", "the URL contains a NUL character")
        if request.path.startswith(API_PREFIX):
            empty = next((key for key, values in pairs if "" in values), None)
            if empty is not None:
                message = f"query parameter {empty} has no value"
                return json_error_response(400, "empty_parameter", message, field=empty)
        return self.get_response(request)
