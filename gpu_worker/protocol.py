"""The wire contract between the control plane and GPU workers.

Both sides import this module; it must stay free of Django so GPU machines need no database
credentials (or Django at all). Change a name here and both sides change together.
"""

from __future__ import annotations

from typing import Any, Literal

# The lanes GPU workers publish on: lifecycle reports, and the fleet's registrations and heartbeats,
# each with consumers of its own, so a flood of heartbeats never delays a report.
CONTROL_QUEUE = "control"
FLEET_QUEUE = "fleet"
WORKER_QUEUE_PREFIX = "worker."
WORKER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"

# Sent by the control plane to a worker's own queue.
RUN_JOB_TASK = "gpu_worker.run_job"

# Sent by GPU workers to the control queue.
REPORT_STARTED_TASK = "jobqueue.report_started"
REPORT_PROGRESS_TASK = "jobqueue.report_progress"
REPORT_SUCCEEDED_TASK = "jobqueue.report_succeeded"
REPORT_FAILED_TASK = "jobqueue.report_failed"
REPORT_CANCELLED_TASK = "jobqueue.report_cancelled"
REPORT_HANDED_BACK_TASK = "jobqueue.report_handed_back"  # a stopping worker gives a job back unfinished
REGISTER_WORKER_TASK = "machines.register_worker"
HEARTBEAT_TASK = "machines.worker_heartbeat"
DEREGISTER_WORKER_TASK = "machines.deregister_worker"

# The control plane tells workers which attempts must stop here (on the broker's Redis), so a worker
# sees it without database access. Value: the highest attempt number that must stop, because its
# job was cancelled or the control plane declared the attempt lost or timed out. Only ever raised.
# Under the worker's id, so its broker user may read its own flags and no other worker's (worker ids
# that join hold no `:` and no glob character: `WORKER_ID_PATTERN`).
CANCEL_FLAG_PREFIX = "jobqueue:cancel:{worker_id}:"

# What a worker proves itself with: every job report carries the attempt's lease token (sent with
# the job, on the worker's own queue, which no other worker can read), and every fleet message its
# worker key (the secret of its broker user, issued when it joined the fleet).
LEASE_ARG = "lease"
WORKER_KEY_ARG = "key"

# A job still running this long past its timeout is given up by its worker (a hard limit); the control
# plane waits at least as long past the timeout before it fails the attempt itself.
HARD_TIMEOUT_GRACE_SECONDS = 30.0


def worker_queue(worker_id: str) -> str:
    return f"{WORKER_QUEUE_PREFIX}{worker_id}"


def broker_username(worker_id: str) -> str:
    """The broker (Redis ACL) user of a worker that joined the fleet."""
    return f"{WORKER_QUEUE_PREFIX}{worker_id}"


def cancel_flag_key(worker_id: str, job_id: str) -> str:
    return CANCEL_FLAG_PREFIX.format(worker_id=worker_id) + job_id


ErrorClass = Literal["transient", "permanent"]


def attempt_error(
    code: str, message: str, error_class: ErrorClass = "transient", details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Why an attempt failed, as reports carry it: `transient` errors are retried, `permanent` are not."""
    error: dict[str, Any] = {"code": code, "message": message, "class": error_class}
    if details is not None:
        error["details"] = details
    return error
