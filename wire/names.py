"""Names both sides agree on: the lanes GPU workers write to, their own queues, task names, cancel
flags and broker users.

Each worker writes its reports and fleet messages to lists of its own (`control.<worker id>`,
`fleet.<worker id>`), which its broker user may push to and nothing else may: the broker's ACL, not
the message, says who sent a message. The control plane consumes every worker's lists of a lane
(`core.batch_consumer`), so a worker that floods fills its own list only.
"""

from __future__ import annotations

# The lanes GPU workers publish on: lifecycle reports, and the fleet's registrations and heartbeats,
# each with consumers of its own, so a flood of heartbeats never delays a report.
CONTROL_LANE = "control"
FLEET_LANE = "fleet"
LANES = (CONTROL_LANE, FLEET_LANE)
LANE_SEPARATOR = "."
WORKER_QUEUE_PREFIX = "worker."
WORKER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
MAX_WORKER_ID_LENGTH = 100

# Sent by the control plane to a worker's own queue.
RUN_JOB_TASK = "gpu_worker.run_job"

# Sent by GPU workers on their control lane.
REPORT_STARTED_TASK = "jobqueue.report_started"
REPORT_PROGRESS_TASK = "jobqueue.report_progress"
REPORT_SUCCEEDED_TASK = "jobqueue.report_succeeded"
REPORT_FAILED_TASK = "jobqueue.report_failed"
REPORT_CANCELLED_TASK = "jobqueue.report_cancelled"
REPORT_HANDED_BACK_TASK = "jobqueue.report_handed_back"  # a stopping worker gives a job back unfinished
# Sent by GPU workers on their fleet lane.
REGISTER_WORKER_TASK = "machines.register_worker"
HEARTBEAT_TASK = "machines.worker_heartbeat"
DEREGISTER_WORKER_TASK = "machines.deregister_worker"

# The control plane tells workers which attempts must stop here (on the broker's Redis), so a worker
# sees it without database access. Value: the highest attempt number that must stop, because its
# job was cancelled or the control plane declared the attempt lost or timed out. Only ever raised.
# Under the worker's id, so its broker user may read its own flags and no other worker's (worker ids
# that join hold no `:` and no glob character: `WORKER_ID_PATTERN`).
CANCEL_FLAG_PREFIX = "jobqueue:cancel:{worker_id}:"

# Every job report carries its attempt's lease token (sent with the job, on the worker's own queue,
# which no other worker can read): a report proves the attempt with it.
LEASE_ARG = "lease"

# A job still running this long past its timeout is given up by its worker (a hard limit); the control
# plane waits at least as long past the timeout before it fails the attempt itself.
HARD_TIMEOUT_GRACE_SECONDS = 30.0


def worker_queue(worker_id: str) -> str:
    return f"{WORKER_QUEUE_PREFIX}{worker_id}"


def lane_list(lane: str, worker_id: str) -> str:
    """The broker list a worker writes `lane`'s messages to: its own, so the list names the sender."""
    return f"{lane}{LANE_SEPARATOR}{worker_id}"


def lane_sender(lane: str, list_name: str) -> str | None:
    """The worker that wrote to `list_name`, if it is one of `lane`'s lists."""
    prefix = f"{lane}{LANE_SEPARATOR}"
    return list_name[len(prefix) :] if list_name.startswith(prefix) else None


def broker_username(worker_id: str) -> str:
    """The broker (Redis ACL) user of a worker that joined the fleet."""
    return f"{WORKER_QUEUE_PREFIX}{worker_id}"


def cancel_flag_key(worker_id: str, job_id: str) -> str:
    return CANCEL_FLAG_PREFIX.format(worker_id=worker_id) + job_id
