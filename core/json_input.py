"""JSON from clients (API bodies, WebSocket messages), refused with a reason before anything is done
with it when Postgres could not store it or it is deeper than anything we take: the NUL character
(`\\u0000`; jsonb and text refuse it), lone surrogates such as `\\ud800` (not UTF-8), nesting past
`API_JSON_MAX_DEPTH` (Python's parser would otherwise fail deep in its recursion), and object keys
longer than `API_JSON_MAX_KEY_LENGTH` (a key is a name, not data)."""

from __future__ import annotations

import json

from django.conf import settings

from wire.json_types import JsonValue


class UnstorableJson(ValueError):
    """JSON we refuse: `code` says why, `path` where (dotted, like the validation errors' fields)."""

    def __init__(self, code: str, message: str, path: str) -> None:
        super().__init__(message)
        self.code, self.message, self.path = code, message, path


def loads(text: str | bytes) -> JsonValue:
    """`json.loads`, then `check_storable`; malformed JSON is a plain ValueError."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise _too_deep("") from None
    check_storable(value)
    return value


def check_storable(value: JsonValue) -> None:
    """Walk `value` (without recursion) and raise UnstorableJson at the first thing refused."""
    max_depth = settings.API_JSON_MAX_DEPTH
    stack: list[tuple[JsonValue, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            _check_string(item, path)
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise _too_deep(path)
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                child_path = f"{path}.{key}" if path else str(key)
                if isinstance(key, str):
                    _check_key(key, child_path)
                stack.append((child, depth + 1, child_path))


def _check_key(key: str, path: str) -> None:
    if len(key) > settings.API_JSON_MAX_KEY_LENGTH:
        raise UnstorableJson(
            "key_too_long",
            f"object keys are at most {settings.API_JSON_MAX_KEY_LENGTH} characters",
            path[:100],
        )
    _check_string(key, path)


def _check_string(text: str, path: str) -> None:
    if "\x00" in text:
        raise UnstorableJson("null_character", "text may not contain the NUL character (\\u0000)", path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnstorableJson(
            "invalid_unicode", "text may not contain lone surrogates (such as \\ud800)", path
        ) from None


def _too_deep(path: str) -> UnstorableJson:
    return UnstorableJson(
        "too_deep", f"JSON may be nested at most {settings.API_JSON_MAX_DEPTH} levels deep", path
    )


def why_unstorable(value: JsonValue, max_bytes: int) -> str | None:
    """Why `value` (JSON a worker sent) cannot be stored as it is, or None: over `max_bytes` as JSON,
    or refused by `check_storable`."""
    try:
        size = len(json.dumps(value))
        check_storable(value)
    except UnstorableJson as refused:
        return f"{refused.path or 'the value'}: {refused.message}"
    except (TypeError, ValueError, RecursionError):
        return "it is not JSON"
    if size > max_bytes:
        return f"it is {size} bytes as JSON, over the limit of {max_bytes}"
    return None
