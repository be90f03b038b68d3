"""The GPU worker's Celery app: consumes its own queue, one job per free slot, no result backend.

Configured for a broker user that may do nothing else (`machines/broker_users.py` grants it): one
list per queue (no priority sub-lists), no acknowledgement bookkeeping in shared keys (the control
plane's lease decides redelivery), no queue declarations, no remote control and no event or
heartbeat broadcasts."""

from __future__ import annotations

from celery import Celery

from gpu_worker.runner import JobRunner
from wire import names
from wire.job_spec import read_spec
from wire.json_types import JsonObject

# Long enough that a long job's unacked message is not redelivered while it runs.
VISIBILITY_TIMEOUT_S = 25 * 3600

app = Celery("gpu_worker")
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    result_backend=None,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    broker_transport="gpu_worker.transport:GpuWorkerTransport",
    broker_transport_options={
        "visibility_timeout": VISIBILITY_TIMEOUT_S,
        "priority_steps": [0],
        "ack_emulation": False,
    },
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    worker_enable_remote_control=False,
)

_runner: JobRunner | None = None


def install_runner(runner: JobRunner) -> None:
    global _runner
    _runner = runner


@app.task(name=names.RUN_JOB_TASK)
def run_job(spec: JsonObject) -> str:
    if _runner is None:
        raise RuntimeError("gpu_worker started without a runner; use `python -m gpu_worker`")
    # Checked against the wire contract's job spec before anything runs (its types, as built by the
    # control plane); connectors read it as JSON.
    return _runner.run(read_spec(spec))
