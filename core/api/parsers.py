"""Request bodies are JSON whatever their content type says (curl -d sends a form type)."""

from __future__ import annotations

from rest_framework.parsers import JSONParser


class AnyContentTypeJSONParser(JSONParser):
    media_type = "*/*"
