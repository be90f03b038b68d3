"""Operating the system: the running stack's /metrics after real jobs, failures and a dead letter; the
real Prometheus server with the shipped scrape config and rules scraping it; a GPU worker's own
metrics port."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from devstack.embedded import free_port
from tests.acceptance.test_monitor_browser import chromium_page
from tests.acceptance.test_stack import _healthy, _start_stack, _status, _stop
from tests.conftest import ROOT, TEST_DATA_DIR, wait_for

pytestmark = pytest.mark.slow

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"  # Debian's package (scripts/test)
SHIPPED = ROOT / "docker" / "prometheus"
ALERTS_SCREENSHOT = TEST_DATA_DIR / "prometheus-alerts.png"
TOKEN = "scrape-token-for-the-test"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _prometheus_files(folder, target: str) -> None:
    """The shipped scrape config and rules, pointed at the test's stack, with faster intervals and the
    DLQAccumulation threshold lowered to what the test piles up."""
    config = yaml.safe_load((SHIPPED / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    [job] = config["scrape_configs"]
    job["static_configs"] = [{"targets": [target]}]
    (folder / "metrics-token").write_text(TOKEN)
    job["authorization"]["credentials_file"] = str(folder / "metrics-token")
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    rules = (SHIPPED / "alert-rules.yml").read_text().replace("dead_letter_jobs > 50", "dead_letter_jobs > 1")
    assert "dead_letter_jobs > 1" in rules
    (folder / "alert-rules.yml").write_text(rules)


def test_prometheus_scrapes_the_running_stack_and_raises_an_alert_when_dead_letters_pile_up(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("METRICS_TOKEN", TOKEN)
    ports = {name: free_port() for name in ("pg", "redis", "api", "flower", "prometheus")}
    base = f"http://127.0.0.1:{ports['api']}"
    stack = _start_stack(tmp_path, ports)
    prometheus = None
    try:
        wait_for(
            lambda: stack.poll() is not None or _healthy(base, tmp_path),
            timeout=120,
            interval=0.5,
            what="the stack",
        )
        assert stack.poll() is None, (tmp_path / "stack.log").read_text()[-3000:]
        headers = {"x-api-key": (tmp_path / "dev-api-key").read_text().strip()}
        jobs = [{"type": "simulation"}] * 3 + [
            {"type": "simulation", "payload": {"fail_permanently": True}, "max_retries": 0}
        ] * 2
        ids = [
            requests.post(f"{base}/api/jobs", json=j, headers=headers, timeout=5).json()["job_id"]
            for j in jobs
        ]
        for job_id in ids:
            wait_for(
                lambda job_id=job_id: _status(f"{base}/api/jobs/{job_id}", headers) in {"completed", "failed"}
            )

        assert requests.get(f"{base}/metrics", timeout=5).status_code == 401  # the token is asked for
        scrape_headers = {"Authorization": f"Bearer {TOKEN}"}

        def scraped() -> dict:
            return samples(requests.get(f"{base}/metrics", headers=scrape_headers, timeout=10).text)

        simulation = frozenset({("job_type", "simulation")})
        failed = ("jobs_processed_total", simulation | {("status", "failed")})
        wait_for(lambda: scraped().get(failed) == 2, what=f"the failures to be counted: {scraped()}")
        metrics = scraped()
        assert metrics[("jobs_submitted_total", simulation)] == 5
        assert metrics[("jobs_processed_total", simulation | {("status", "completed")})] == 3
        assert metrics[("dead_letter_jobs", frozenset())] == 2
        assert metrics[("worker_alive_gauge", frozenset({("pool", "standard")}))] == 1
        assert metrics[("job_duration_seconds_count", simulation)] == 5
        assert metrics[("lane_messages_total", frozenset({("lane", "control")}))] >= 5
        assert ("control_plane_lane_backlog", frozenset({("lane", "fleet")})) in metrics

        _prometheus_files(tmp_path, f"127.0.0.1:{ports['api']}")
        prometheus_log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115  (open while it runs)
        prometheus = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            ],
            stdout=prometheus_log,
            stderr=subprocess.STDOUT,
        )
        api = f"http://127.0.0.1:{ports['prometheus']}/api/v1"

        def target_health() -> list[str]:
            try:
                active = requests.get(f"{api}/targets", timeout=2).json()["data"]["activeTargets"]
            except (requests.RequestException, ValueError):
                return []
            return [target["health"] for target in active]

        wait_for(lambda: target_health() == ["up"], timeout=60, what="Prometheus to scrape the stack")

        def alert_states() -> dict[str, str]:
            alerts = requests.get(f"{api}/alerts", timeout=2).json()["data"]["alerts"]
            return {alert["labels"]["alertname"]: alert["state"] for alert in alerts}

        wait_for(lambda: alert_states().get("DLQAccumulation") == "pending", timeout=60, what="the alert")
        assert "HighQueueDepth" not in alert_states()
        with chromium_page() as (page, _errors):
            page.goto(
                f"http://127.0.0.1:{ports['prometheus']}/classic/alerts"
            )  # Debian builds the classic UI
            page.wait_for_load_state("networkidle")
            time.sleep(1)
            page.screenshot(path=str(ALERTS_SCREENSHOT), full_page=True)
            assert "DLQAccumulation" in page.content()
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(30)
        code = _stop(stack)
    assert code == 0, (tmp_path / "stack.log").read_text()[-3000:]


@pytest.mark.django_db(transaction=True)
def test_a_gpu_worker_serves_its_own_metrics_on_a_local_port(gpu_worker, submit, wait_for_status):
    port = free_port()
    gpu_worker(extra_flags=("--metrics-port", str(port)))
    done, failed = submit(), submit(payload={"fail_permanently": True}, max_retries=0)
    wait_for_status(done, "completed")
    wait_for_status(failed, "failed")

    metrics = samples(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)

    assert (
        metrics[("gpu_worker_jobs_total", frozenset({("job_type", "simulation"), ("outcome", "completed")}))]
        == 1
    )
    failed_labels = frozenset({("job_type", "simulation"), ("outcome", "failed")})
    assert metrics[("gpu_worker_jobs_total", failed_labels)] == 1
    assert sum(v for (name, _), v in metrics.items() if name == "gpu_worker_connector_errors_total") == 1
