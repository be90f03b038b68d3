"""The GPU worker's own pieces: GPU detection, configuration, connectors and the job runner."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gpu_worker import gpus
from gpu_worker.config import parse_config
from gpu_worker.connectors import build_connectors
from gpu_worker.connectors.base import Connector
from gpu_worker.runner import JobRunner
from wire.job_spec import read_spec


class FakeNvml:
    """Stands in for the NVML library on a machine with two GPUs."""

    class NVMLError(Exception):
        pass

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, cards):
        self.cards = cards
        self.shutdown_called = False

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        self.shutdown_called = True

    def nvmlSystemGetDriverVersion(self):
        return b"550.54"

    def nvmlDeviceGetCount(self):
        return len(self.cards)

    def nvmlDeviceGetHandleByIndex(self, index):
        return self.cards[index]

    def nvmlDeviceGetName(self, handle):
        return handle["name"]

    def nvmlDeviceGetUUID(self, handle):
        return f"GPU-{handle['name']}"

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(total=handle["bytes"], used=handle.get("used", 0), free=0)

    def nvmlSystemGetCudaDriverVersion(self):
        return 12040

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(gpu=handle.get("utilization", 0), memory=0)

    def nvmlDeviceGetTemperature(self, handle, sensor):
        if "temperature" not in handle:
            raise self.NVMLError("Not Supported")
        return handle["temperature"]


def test_the_fake_nvml_speaks_the_real_librarys_api():
    """Every call the detection makes exists, under that name, in nvidia-ml-py itself."""
    import pynvml as real

    for name in [n for n in vars(FakeNvml) if n.startswith(("nvml", "NVML"))]:
        assert hasattr(real, name), name


@pytest.fixture
def two_gpus(monkeypatch):
    fake = FakeNvml(
        [
            {
                "name": "NVIDIA A10",
                "bytes": 24 * 1024**3,
                "used": 6 * 1024**3,
                "utilization": 37,
                "temperature": 61,
            },
            {"name": b"NVIDIA H100", "bytes": 80 * 1024**3},
        ]
    )
    monkeypatch.setitem(__import__("sys").modules, "pynvml", fake)
    return fake


def test_gpus_are_detected_through_nvml(two_gpus):
    detected = gpus.detect_gpus()

    assert [(g.index, g.name, g.memory_total_gb) for g in detected] == [
        (0, "NVIDIA A10", 24.0),
        (1, "NVIDIA H100", 80.0),
    ]
    assert (detected[0].driver_version, detected[0].cuda_version) == ("550.54", "12.4")
    assert two_gpus.shutdown_called


def test_utilisation_and_memory_use_are_read_for_heartbeats(two_gpus):
    assert gpus.read_telemetry(0) == {
        "gpu_utilization_percent": 37,
        "gpu_memory_used_gb": 6.0,
        "gpu_memory_total_gb": 24.0,
        "temperature_c": 61,
    }
    assert "temperature_c" not in gpus.read_telemetry(1)  # a GPU that does not report it
    assert gpus.read_telemetry(None) == {}


def test_the_machine_description_names_its_gpus_and_software(two_gpus):
    described = gpus.describe_machine(gpus.detect_gpus(), {"region": "eu"})

    assert [g["name"] for g in described["gpus"]] == ["NVIDIA A10", "NVIDIA H100"]
    assert described["software"]["driver"] == "550.54" and described["software"]["cuda"] == "12.4"
    assert described["cpu_count"] >= 1 and described["ram_gb"] > 0 and described["labels"] == {"region": "eu"}


def test_one_command_runs_a_worker_per_gpu_each_pinned_to_its_own(two_gpus):
    from gpu_worker.supervisor import child_ids

    config = parse_config(["--machine-id", "box"])
    assert child_ids(config) == [("box-gpu0", 0), ("box-gpu1", 1)]
    shared = parse_config(["--machine-id", "box", "--workers-per-gpu", "2"])
    assert child_ids(shared) == [("box-gpu0-0", 0), ("box-gpu0-1", 0), ("box-gpu1-0", 1), ("box-gpu1-1", 1)]


def test_a_detected_gpu_sets_the_advertised_memory_and_worker_id(two_gpus):
    config = parse_config(["--machine-id", "box", "--gpu-index", "1", "--gpu-memory-gb", "8"])

    assert (config.worker_id, config.gpu_memory_gb, config.gpu_name) == ("box-gpu1", 80.0, "NVIDIA H100")


def test_without_nvml_the_configured_values_are_used(monkeypatch):
    class NoDriver(FakeNvml):
        def nvmlInit(self):
            raise self.NVMLError("NVML Shared Library Not Found")

    monkeypatch.setitem(__import__("sys").modules, "pynvml", NoDriver([]))

    config = parse_config(["--machine-id", "cpu-box", "--gpu-memory-gb", "24", "--pool", "fast-lane"])

    assert config.gpus == []
    assert (config.worker_id, config.gpu_memory_gb, config.pool) == ("cpu-box-gpu0", 24.0, "fast-lane")


def test_unknown_connectors_are_refused_at_startup():
    with pytest.raises(ValueError, match="unknown connectors"):
        build_connectors(["simulation", "warp-drive"])


class RecordingReporter:
    """Records each report as (name, job id, attempt, *the rest), and the lease each carried apart."""

    def __init__(self):
        self.calls = []
        self.leases = set()

    def __getattr__(self, name):
        def record(job_id, attempt, lease, *rest):
            self.leases.add(lease)
            self.calls.append((name, job_id, attempt, *rest))

        return record


class NeverCancelled:
    """Nothing is cancelled, and no attempt is ever confirmed over."""

    def is_cancelled_now(self, job_id, attempt):
        return False

    def checker(self, job_id, attempt):
        return lambda: False


def _run(connector: Connector, payload=None, started_report_delay_s=0.2):
    reporter = RecordingReporter()
    runner = JobRunner({"simulation": connector}, reporter, NeverCancelled(), started_report_delay_s)
    spec = {
        "job_id": "j1",
        "attempt": 1,
        "lease": "lease-of-j1",
        "type": "simulation",
        "payload": payload or {},
    }
    outcome = runner.run(read_spec(spec))
    assert reporter.leases == {"lease-of-j1"}  # every report carries its attempt's lease
    return outcome, reporter.calls[-1]


def test_a_crashing_connector_is_reported_as_a_transient_failure():
    class Crashes(Connector):
        name, job_types = "crashes", ("simulation",)

        def run(self, job):
            raise KeyError("boom")

    outcome, last = _run(Crashes())
    assert outcome == "failed"
    assert last[0] == "failed" and last[3]["code"] == "CONNECTOR_CRASHED" and last[3]["class"] == "transient"


def _returning(result):
    class Returns(Connector):
        name, job_types = "returns", ("simulation",)

        def run(self, job):
            return result

    return Returns()


def test_a_result_loses_nul_characters_and_lone_surrogates_before_it_is_reported():
    outcome, last = _run(_returning({"text\x00": ["a\x00b", "bad \ud800 half", "ok \U0001f600"], "n": 1}))
    assert outcome == "completed"
    assert last[3] == {"text": ["ab", "bad \ufffd half", "ok \U0001f600"], "n": 1}


def test_a_result_over_the_limit_fails_for_good_pointing_at_the_artifact_store():
    reporter = RecordingReporter()
    runner = JobRunner({"simulation": _returning({"blob": "x" * 2000})}, reporter, NeverCancelled(), 0.2)
    runner.result_max_bytes = 1000
    outcome = runner.run(
        read_spec({"job_id": "j1", "attempt": 1, "lease": "l", "type": "simulation", "payload": {}})
    )
    error = reporter.calls[-1][3]
    assert (outcome, error["code"], error["class"]) == ("failed", "RESULT_TOO_LARGE", "permanent")
    assert "artifact store" in error["message"]


def test_a_result_that_is_not_json_is_a_permanent_failure():
    class ReturnsObject(Connector):
        name, job_types = "object", ("simulation",)

        def run(self, job):
            return object()

    outcome, last = _run(ReturnsObject())
    assert (outcome, last[3]["code"], last[3]["class"]) == ("failed", "INVALID_RESULT", "permanent")


def test_simulation_rejects_a_bad_payload_permanently():
    simulation = build_connectors(["simulation"])["simulation"]
    outcome, last = _run(simulation, {"duration": "long"})
    assert (outcome, last[3]["code"], last[3]["class"]) == ("failed", "INVALID_PAYLOAD", "permanent")


def test_simulation_reports_progress_and_returns_its_result():
    simulation = build_connectors(["simulation"])["simulation"]
    outcome, last = _run(simulation, {"duration": 0.05, "steps": 5, "result": {"x": 1}})
    assert outcome == "completed"
    assert last[0] == "succeeded" and last[3]["output"] == {"x": 1}


def test_a_short_job_reports_its_start_with_its_outcome_and_a_long_one_separately():
    simulation = build_connectors(["simulation"])["simulation"]

    reporter = RecordingReporter()
    JobRunner({"simulation": simulation}, reporter, NeverCancelled(), 0.2).run(
        read_spec({"job_id": "fast", "attempt": 1, "lease": "l", "type": "simulation", "payload": {}})
    )
    assert [call[0] for call in reporter.calls] == ["succeeded"]
    assert reporter.calls[0][4] >= 0  # runtime_ms, so the control plane can date the start

    reporter = RecordingReporter()
    JobRunner({"simulation": simulation}, reporter, NeverCancelled(), 0.05).run(
        read_spec(
            {"job_id": "slow", "attempt": 1, "lease": "l", "type": "simulation", "payload": {"duration": 0.3}}
        )
    )
    assert [call[0] for call in reporter.calls if call[0] != "progress"] == ["started", "succeeded"]
    assert reporter.calls[-1][4] >= 300


def _run_with_timeout(payload: dict, hard_timeout_grace_s: float):
    simulation = build_connectors(["simulation"])["simulation"]
    reporter, stuck = RecordingReporter(), []
    runner = JobRunner(
        {"simulation": simulation},
        reporter,
        NeverCancelled(),
        hard_timeout_grace_s=hard_timeout_grace_s,
        on_stuck_job=stuck.append,
    )
    spec = {"job_id": "j1", "attempt": 1, "lease": "l", "type": "simulation", "timeout_seconds": 0.3}
    return runner.run(read_spec({**spec, "payload": payload})), reporter.calls[-1], stuck


def test_a_job_that_stops_at_its_soft_time_limit_fails_with_timeout_and_the_worker_goes_on():
    outcome, last, stuck = _run_with_timeout({"duration": 60}, hard_timeout_grace_s=5)

    assert (outcome, last[0], last[3]["code"], last[3]["class"]) == (
        "failed",
        "failed",
        "TIMEOUT",
        "transient",
    )
    assert stuck == []


def test_a_job_deaf_to_its_time_limit_is_given_up_at_the_hard_limit_and_the_worker_restarts():
    outcome, last, stuck = _run_with_timeout({"stuck_seconds": 3}, hard_timeout_grace_s=0.2)

    assert (outcome, last[0], last[3]["code"]) == ("abandoned", "failed", "TIMEOUT")
    assert "hard limit" in last[3]["message"]
    assert stuck == ["j1"]


def test_a_final_report_is_sent_again_until_the_control_plane_confirms_it(monkeypatch):
    from gpu_worker import runner as runner_module

    monkeypatch.setattr(runner_module, "REPORT_CONFIRM_AFTER_S", 0.0)

    applied = set()

    class Flags(NeverCancelled):
        def is_cancelled_now(self, job_id, attempt):
            return job_id in applied  # the "attempt is over" flag, raised once its report was applied

    simulation = build_connectors(["simulation"])["simulation"]
    reporter = RecordingReporter()
    runner = JobRunner({"simulation": simulation}, reporter, Flags())
    for job_id in ("a", "b"):
        runner.run(
            read_spec({"job_id": job_id, "attempt": 1, "lease": "l", "type": "simulation", "payload": {}})
        )
    applied.add("a")  # b's report was lost with the broker

    assert sorted(runner.attempts.seen()) == [["a", 1], ["b", 1]]  # both received, for heartbeats
    assert runner.resend_unconfirmed_reports() == 1
    assert [c[:2] for c in reporter.calls if c[0] == "succeeded"] == [
        ("succeeded", "a"),
        ("succeeded", "b"),
        ("succeeded", "b"),  # sent again: it may have been lost with the broker
    ]
