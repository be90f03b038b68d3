"""The one shape of an attempt's error, on both sides of the wire."""

from __future__ import annotations

from gpu_worker.connectors.base import PermanentError, TransientError
from wire.reports import attempt_error, normalise_error


def test_an_attempt_error_is_transient_unless_said_otherwise():
    assert attempt_error("TIMEOUT", "too slow") == {
        "code": "TIMEOUT",
        "message": "too slow",
        "class": "transient",
    }


def test_connector_errors_report_in_the_same_shape():
    assert TransientError("gone").as_report() == attempt_error("TRANSIENT_ERROR", "gone")
    report = PermanentError("bad", details={"node": 3}).as_report()
    assert report["class"] == "permanent" and report["details"] == {"node": 3}


def test_a_workers_error_is_bounded_and_gets_a_known_class():
    error = normalise_error({"code": "X" * 500, "message": "m" * 5000, "class": "weird", "details": "no"})
    assert len(error["code"]) == 100 and len(error["message"]) == 4000
    assert error["class"] == "transient"
    assert "details" not in error


def test_an_empty_error_is_a_transient_worker_error():
    assert normalise_error(None) == attempt_error("WORKER_ERROR", "")
