"""Every API error in the seeds' envelope: {"success": false, "error": {code, message, field, details}}."""

from __future__ import annotations

import logging

import psycopg
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, DataError, IntegrityError
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from core.errors import DomainError
from wire.json_types import JsonObject, JsonValue

logger = logging.getLogger(__name__)


def error_body(
    code: str, message: str, field: str | None = None, details: JsonObject | None = None
) -> JsonObject:
    """The envelope's error object: {code, message, field?, details}."""
    error: JsonObject = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    error["details"] = details or {}
    return error


def json_error_response(http_status: int, code: str, message: str, field: str | None = None) -> JsonResponse:
    """The envelope answered outside DRF (middleware, Django's own error handlers)."""
    return JsonResponse({"success": False, "error": error_body(code, message, field)}, status=http_status)


def error_response(
    http_status: int, code: str, message: str, field: str | None = None, details: JsonObject | None = None
) -> Response:
    return Response(
        {"success": False, "error": error_body(code, message, field, details)}, status=http_status
    )


def validation_error_body(detail: JsonValue) -> JsonObject:
    """The error object for a serializer's errors: the first field at fault, and every field's errors."""
    fields = _flatten(detail)
    first_field, first_errors = next(
        iter(fields.items()), ("body", [{"code": "invalid", "message": "invalid"}])
    )
    first = first_errors[0]
    message = f"{first_field}: {first['message']}" if first_field != "body" else first["message"]
    return error_body("validation_error", message, field=first_field, details={"fields": fields})


_TIMED_OUT = (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled)


def envelope_exception_handler(exc: Exception, context: JsonObject) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return error_response(413, "request_too_large", f"the request body is over {limit} bytes")
    if isinstance(exc, IntegrityError):
        # A constraint caught what validation did not (two requests racing for one name, say): the
        # request conflicts with the data; nothing was changed (its transaction rolled back).
        logger.warning("integrity error answered 409: %s", exc)
        return error_response(
            409, "conflict", "the request conflicts with existing data; nothing was changed"
        )
    if isinstance(exc, DataError):
        logger.warning("data error answered 400: %s", exc)
        return error_response(400, "invalid_value", "a value is out of range or cannot be stored")
    if isinstance(exc, DatabaseError) and isinstance(exc.__cause__, _TIMED_OUT):
        # The API's statement or lock timeout (core.db.limit_sessions) ended a wait: busy, not down.
        logger.warning("database busy: %s", exc)
        response = error_response(503, "database_busy", "the database is busy with this; retry shortly")
        response["Retry-After"] = "1"
        return response
    if isinstance(exc, DatabaseError):
        # Postgres is down or restarting: say so, and let clients retry.
        logger.warning("database unavailable: %s", exc)
        response = error_response(503, "database_unavailable", "the database is unavailable; retry shortly")
        response["Retry-After"] = "5"
        return response
    if isinstance(exc, DomainError):
        response = error_response(
            exc.http_status, exc.code, exc.message, field=exc.field, details=exc.details
        )
        if exc.retry_after_seconds is not None:
            response["Retry-After"] = str(exc.retry_after_seconds)
        return response
    if isinstance(exc, Http404):
        return error_response(404, "not_found", "not found")
    if isinstance(exc, exceptions.ValidationError):
        return Response({"success": False, "error": validation_error_body(exc.detail)}, status=400)
    handled = exception_handler(exc, context)
    if handled is None:
        return None  # unexpected: Django answers 500 without a traceback (DEBUG is off)
    detail = getattr(exc, "detail", None)
    code = detail.code if isinstance(detail, exceptions.ErrorDetail) else exc.__class__.__name__.lower()
    enveloped = error_response(handled.status_code, str(code), str(detail or exc))
    for header in ("WWW-Authenticate", "Retry-After", "Allow"):
        if header in handled:
            enveloped[header] = handled[header]
    return enveloped


def _flatten(detail: JsonValue, prefix: str = "") -> dict[str, list[dict[str, str]]]:
    """{"requirements": {"capabilities": [ErrorDetail]}} -> {"requirements.capabilities": [{code, message}]}"""
    if isinstance(detail, dict):
        flat: dict[str, list[dict[str, str]]] = {}
        for key, value in detail.items():
            # Object-level errors belong to the object itself ("body" at the top level).
            flat.update(_flatten(value, prefix if key == "non_field_errors" else f"{prefix}{key}."))
        return flat
    if isinstance(detail, list) and detail and all(isinstance(d, exceptions.ErrorDetail) for d in detail):
        return {prefix.rstrip(".") or "body": [{"code": d.code, "message": str(d)} for d in detail]}
    if isinstance(detail, list):
        flat = {}
        for index, value in enumerate(detail):
            if value:
                flat.update(_flatten(value, f"{prefix}{index}."))
        return flat
    return {
        prefix.rstrip(".") or "body": [{"code": getattr(detail, "code", "invalid"), "message": str(detail)}]
    }
