"""What a job's result may be before its worker reports it: JSON the control plane can store.

Strings lose NUL characters (Postgres refuses them in JSON) and lone surrogates become U+FFFD (they
are not Unicode); a result larger than the limit (`--result-max-bytes`, the control plane's
JOB_RESULT_MAX_BYTES by default) fails the attempt for good, saying to put large outputs in the
artifact store and return their URLs. No Django here."""

from __future__ import annotations

import json

from wire.bounds import check_depth
from wire.json_types import JsonValue

DEFAULT_RESULT_MAX_BYTES = 1024 * 1024  # the control plane's JOB_RESULT_MAX_BYTES default


class ResultTooLarge(ValueError):
    pass


def storable(result: JsonValue, max_bytes: int) -> JsonValue:
    """The result cleaned for storage; ResultTooLarge if even so it is over `max_bytes`; TypeError or
    ValueError if it is not JSON at all, or nested deeper than the wire allows."""
    check_depth(result, "the result")
    cleaned = _clean(result)
    size = len(json.dumps(cleaned, ensure_ascii=False).encode())
    if size > max_bytes:
        raise ResultTooLarge(
            f"the result is {size} bytes, over the limit of {max_bytes}: put large outputs in the "
            "artifact store (the job's artifacts) and return their URLs"
        )
    return cleaned


def _clean(value: JsonValue) -> JsonValue:
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, dict):
        return {_clean(key): _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def _clean_text(text: str) -> str:
    # Through UTF-16, a lone surrogate is passed through, then replaced on decoding (pairs survive).
    return text.replace("\x00", "").encode("utf-16", "surrogatepass").decode("utf-16", "replace")
