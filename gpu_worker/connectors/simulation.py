"""A connector that simulates GPU work: for tests, demos and benchmarks.

Payload: `duration` (seconds, default 0), `steps` (progress reports, default 10 when duration > 0),
`fail_times` (the first N attempts fail transiently), `fail_permanently`, `hang` (runs until cancelled
or timed out), `hang_times` (the first N attempts hang), `stuck_seconds` (an engine that ignores
cancellation and timeouts for that long, to exercise the hard time limit), `result` (echoed back).

With `SIMULATION_JOURNAL` set to a file path, every completed run appends `<job id> <attempt>` to it:
the ground truth of what ran, against which fault tests count duplicates.
"""

from __future__ import annotations

import os
import time

from gpu_worker.connectors.base import Connector, JobContext, PermanentError, TransientError
from wire.json_types import JsonObject, JsonValue

HANG_POLL_SECONDS = 0.1


class SimulationConnector(Connector):
    name = "simulation"
    job_types = ("simulation",)

    def health(self) -> bool:
        """Down while the file named by SIMULATION_UNHEALTHY_FLAG exists (tests and demos of an engine outage)."""
        flag = os.environ.get("SIMULATION_UNHEALTHY_FLAG")
        if flag and os.path.exists(flag):
            raise RuntimeError(f"engine down ({flag} exists)")
        return True

    def run(self, job: JobContext) -> JsonValue:
        options = _options(job.payload)
        job.checkpoint()
        if options["fail_permanently"]:
            raise PermanentError("simulated permanent failure", code="SIMULATED_PERMANENT")
        if job.attempt <= options["fail_times"]:
            raise TransientError(
                f"simulated transient failure on attempt {job.attempt}", code="SIMULATED_TRANSIENT"
            )
        if options["stuck_seconds"]:
            time.sleep(options["stuck_seconds"])  # deaf to cancellation and timeouts, like a wedged engine
        if options["hang"] or job.attempt <= options["hang_times"]:
            while True:
                job.sleep(HANG_POLL_SECONDS)  # until cancelled or timed out
        duration, steps = options["duration"], options["steps"]
        for step in range(1, steps + 1):
            job.sleep(duration / steps)
            job.report_progress(int(step * 100 / steps), f"step {step}/{steps}")
        if steps == 0 and duration > 0:
            job.sleep(duration)
        _journal(job)
        return {
            "simulated": True,
            "duration": duration,
            "attempt": job.attempt,
            "output": options["result"],
            # What a step got from the steps it depends on: it proves they were handed over.
            "inputs": [{"job_id": i["job_id"], "output": _output_of(i.get("result"))} for i in job.inputs],
        }


def _options(payload: JsonObject) -> JsonObject:
    def number(name: str, default: float) -> float:
        value = payload.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise PermanentError(f"payload.{name} must be a non-negative number", code="INVALID_PAYLOAD")
        return value

    duration = float(number("duration", 0))
    return {
        "duration": duration,
        "steps": int(number("steps", 10 if duration > 0 else 0)),
        "fail_times": int(number("fail_times", 0)),
        "fail_permanently": bool(payload.get("fail_permanently", False)),
        "hang": bool(payload.get("hang", False)),
        "hang_times": int(number("hang_times", 0)),
        "stuck_seconds": float(number("stuck_seconds", 0)),
        "result": payload.get("result"),
    }


def _output_of(result: JsonValue) -> JsonValue:
    return result.get("output") if isinstance(result, dict) else result


def _journal(job: JobContext) -> None:
    path = os.environ.get("SIMULATION_JOURNAL")
    if path:
        with open(path, "a") as journal:  # one short append per line: atomic with O_APPEND
            journal.write(f"{job.spec.job_id} {job.attempt}\n")
