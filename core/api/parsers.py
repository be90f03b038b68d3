"""Request bodies are JSON whatever their content type says (curl -d sends a form type), and only
JSON Postgres can store (`core.json_input`): anything else is a 400 saying why and where. (A body
over API_MAX_BODY_BYTES never gets here: Django refuses it by its declared length, or once the limit
is read, and `core.api.errors` answers 413.)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import ErrorDetail, ParseError, ValidationError
from rest_framework.parsers import JSONParser

from core.json_input import UnstorableJson, check_storable
from wire.json_types import JsonValue


class _Checked(JSONParser):
    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> JsonValue:
        try:
            data = super().parse(stream, media_type, parser_context)
            check_storable(data)
        except RecursionError:
            raise ParseError("JSON nested too deep", code="too_deep") from None
        except UnstorableJson as refused:
            error = ErrorDetail(refused.message, code=refused.code)
            raise ValidationError({refused.path or "body": [error]}) from None
        return data


class CheckedJSONParser(_Checked):
    """application/json: what the schema documents."""


class AnyContentTypeJSONParser(_Checked):
    """Any other content type, read as JSON all the same."""

    media_type = "*/*"
