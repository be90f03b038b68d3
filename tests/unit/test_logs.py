"""Log lines: JSON objects with LOG_FORMAT=json, the context they were logged in, and no secret."""

from __future__ import annotations

import contextvars
import io
import json
import logging

import pytest

from wire import logs


def _logged(log_format: str, emit, **static) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter_class(log_format)())
    handler.addFilter(logs.ContextFilter(**static))
    logger = logging.getLogger(f"test-logs-{log_format}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        contextvars.Context().run(emit, logger)  # nothing bound by an earlier test in this thread
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_json_line_carries_the_context_it_was_logged_in():
    def emit(logger):
        with logs.log_context(correlation_id="c-1", tenant_id=7), logs.log_context(job_id="j-1"):
            logger.info("job %s done", "j-1")
        logger.info("outside")

    first, second = (json.loads(line) for line in _logged("json", emit, worker_id="gpu0").splitlines())

    assert first["message"] == "job j-1 done" and first["level"] == "INFO"
    assert (first["correlation_id"], first["tenant_id"], first["job_id"], first["worker_id"]) == (
        "c-1",
        "7",
        "j-1",
        "gpu0",
    )
    assert "job_id" not in second and second["worker_id"] == "gpu0"


def test_plain_lines_are_readable_and_say_what_they_are_about():
    line = _logged("plain", lambda logger: logger.warning("slow"), worker_id="gpu0")
    assert line.rstrip().endswith("WARNING test-logs-plain slow worker_id=gpu0")


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_secrets_never_reach_a_line_whatever_logs_them(log_format):
    def emit(logger):
        logger.info("broker at redis://worker-1:s3cret-pass@10.0.0.5:6379/0")
        logger.info("headers {'Authorization': 'Bearer tok-abc123'}; api_key=jq_live_456 password: hunter2")
        logger.info("a report %r", {"job_id": "j", "attempt": 1, "lease": "lease-789"})
        try:
            raise RuntimeError("could not connect to postgresql://jobqueue:db-pass@postgres/jobqueue")
        except RuntimeError:
            logger.exception("database down")

    output = _logged(log_format, emit)

    for secret in ("s3cret-pass", "tok-abc123", "jq_live_456", "hunter2", "db-pass", "lease-789"):
        assert secret not in output
    assert "redis://worker-1:***@10.0.0.5" in output


def test_an_unknown_log_format_is_refused_at_start():
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logs.dict_config("INFO", "xml")
