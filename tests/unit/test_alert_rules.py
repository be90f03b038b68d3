"""The shipped Prometheus files: rules and scrape config that Prometheus' own tool accepts, and rules
that fire on series that should fire them and stay quiet on others (alert-rules.test.yml)."""

from __future__ import annotations

import shutil
import subprocess

import yaml

from tests.conftest import ROOT

PROMETHEUS = ROOT / "docker" / "prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"  # Debian's prometheus (scripts/test)


def promtool(*args: str, cwd=PROMETHEUS) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PROMTOOL, *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_the_alert_rules_are_valid():
    checked = promtool("check", "rules", "alert-rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_each_alert_fires_on_series_that_should_fire_it_and_only_those():
    tested = promtool("test", "rules", "alert-rules.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_unit_test_and_a_runbook_entry():
    rules = yaml.safe_load((PROMETHEUS / "alert-rules.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((PROMETHEUS / "alert-rules.test.yml").read_text())
    tested = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"]}
    runbook = (ROOT / "docs" / "operations.md").read_text()

    assert alerts >= {
        "HighQueueDepth",
        "CriticalQueueDepth",
        "WorkerDown",
        "HighFailureRate",
        "DLQAccumulation",
    }
    assert alerts == tested
    assert [alert for alert in sorted(alerts) if f"### {alert}" not in runbook] == []


def test_the_scrape_config_is_valid(tmp_path):
    shutil.copy(PROMETHEUS / "alert-rules.yml", tmp_path)
    token = tmp_path / "metrics-token"
    token.write_text("token\n")
    config = (PROMETHEUS / "prometheus.yml").read_text().replace("/etc/prometheus/metrics-token", str(token))
    (tmp_path / "prometheus.yml").write_text(config)

    checked = promtool("check", "config", "prometheus.yml", cwd=tmp_path)

    assert checked.returncode == 0, checked.stdout + checked.stderr
