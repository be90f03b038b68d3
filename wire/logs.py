"""Log lines for every process, the control plane's and GPU workers' alike: human-readable by
default, one JSON object per line with LOG_FORMAT=json. Each line carries what it is about — the
correlation id, tenant, job, workflow and worker — where the code that logs it runs inside
`log_context`, and no secret: passwords in URLs, bearer tokens and key=value secrets are masked
whatever the message or traceback says.

It lives beside the wire contract (`wire.names`) because both sides use it and a GPU worker
holds none of the control plane's code."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
from collections.abc import Iterator
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from wire.json_types import JsonObject

CONTEXT_FIELDS = ("correlation_id", "tenant_id", "job_id", "workflow_id", "worker_id")
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s%(context)s"
JSON_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("log_context", default={})  # noqa: B039  (never mutated: replaced)
_MASK = "***"
_SECRETS = (
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.IGNORECASE), rf"\g<1>{_MASK}@"),
    (re.compile(r"(\bbearer\s+)[^\s\"',]+", re.IGNORECASE), rf"\g<1>{_MASK}"),
    (
        re.compile(
            r"((?:api[_-]?key|token|secret|password|passwd|authorization|lease)[\"']?\s*[=:]\s*[\"']?)[^\s\"',&}]+",
            re.IGNORECASE,
        ),
        rf"\g<1>{_MASK}",
    ),
)


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Lines logged inside carry these fields (None leaves a field out)."""
    token = bind(**fields)
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: Any) -> contextvars.Token[dict[str, str]]:
    """Add fields to the current context (until the returned token is reset)."""
    unknown = set(fields) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"not a log context field: {sorted(unknown)}")
    added = {name: str(value) for name, value in fields.items() if value is not None and value != ""}
    return _context.set({**_context.get(), **added})


def fresh_context(**fields: Any) -> contextvars.Token[dict[str, str]]:
    """Start over (a new request in a reused thread), with these fields."""
    token = _context.set({})
    bind(**fields)
    return token


def reset(token: contextvars.Token[dict[str, str]]) -> None:
    _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the current context onto each record (a handler's filter: every line it writes)."""

    def __init__(self, name: str = "", **static: str) -> None:
        super().__init__(name)
        self.static = static  # fields every line of this process carries (a GPU worker's id)

    def filter(self, record: logging.LogRecord) -> bool:
        fields = {**self.static, **_context.get()}
        for name, value in fields.items():
            if not hasattr(record, name):
                setattr(record, name, value)
        record.context = "".join(f" {name}={value}" for name, value in fields.items())
        return True


class PlainFormatter(logging.Formatter):
    def __init__(self, fmt: str = PLAIN_FORMAT, **kwargs: Any) -> None:
        super().__init__(fmt, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "context"):
            record.context = ""
        return redact(super().format(record))


class JsonLineFormatter(JsonFormatter):
    def __init__(self, fmt: str = JSON_FORMAT, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        # The record's own attributes stay out of the object (as python-json-logger's default), and so
        # does the plain format's context suffix.
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "taskName", "context"])
        super().__init__(fmt, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def formatter_class(log_format: str) -> type[logging.Formatter]:
    if log_format not in {"plain", "json"}:
        raise ValueError(f"LOG_FORMAT must be plain or json, not {log_format!r}")
    return JsonLineFormatter if log_format == "json" else PlainFormatter


def dict_config(level: str, log_format: str) -> JsonObject:
    """The `logging.config.dictConfig` of a control-plane process (settings.LOGGING)."""
    formatter_class(log_format)  # refuses an unknown format at start
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"line": {"()": formatter_class(log_format)}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "line", "filters": ["context"]}
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django.db.backends": {"level": "WARNING"}},
    }


def configure(level: str, log_format: str, **static: str) -> None:
    """A GPU worker's logging: every line on stderr, with `static` fields (its worker id) on each."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter_class(log_format)())
    handler.addFilter(ContextFilter(**static))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
