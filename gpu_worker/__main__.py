"""`python -m gpu_worker`: register with the control plane, heartbeat, and run jobs from our queue."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
import uuid
from pathlib import Path

import msgspec
import redis
from celery import signals
from celery.worker import state as celery_worker_state
from kombu import Exchange, Queue

from gpu_worker import credentials, metrics
from gpu_worker.app import app, install_runner
from gpu_worker.config import WorkerConfig, parse_config
from gpu_worker.connectors import build_connectors
from gpu_worker.connectors.base import Connector
from gpu_worker.gpus import read_telemetry
from gpu_worker.reporter import Reporter
from gpu_worker.runner import CancelWatch, JobRunner
from gpu_worker.supervisor import EXIT_CREDENTIAL_REFUSED, run_supervisor
from wire import fleet, logs, names
from wire.json_types import JsonObject

logger = logging.getLogger("gpu_worker")

EXIT_STUCK_JOB = 75  # EX_TEMPFAIL: restart me
_exit_code: int = 0


class Heartbeat(threading.Thread):
    """Every `interval`: "alive", with this worker's self-description and the attempts it received;
    then the final reports the control plane has not confirmed go again."""

    def __init__(
        self, reporter: Reporter, description: fleet.Description, runner: JobRunner, interval: float
    ) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.reporter, self.description = reporter, description
        self.runner, self.interval = runner, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.reporter.heartbeat(
                    fleet.Heartbeat(
                        instance_id=self.description.instance_id,
                        seen_attempts=[(job_id, attempt) for job_id, attempt in self.runner.attempts.seen()],
                        # When `seen_attempts` was true: the control plane may apply it much later.
                        sent_at=time.time(),
                        health=fleet.Health(**engine_health(self.runner.connectors)),
                        telemetry=read_telemetry(self.description.gpu_index),
                        description=self.description,
                    )
                )
                self.runner.resend_unconfirmed_reports()
            except Exception:
                logger.exception("heartbeat failed; retrying in %.0fs", self.interval)


class CredentialWatch(threading.Thread):
    """Stops the worker when the broker keeps refusing its credential: revoked (`ACL DELUSER` closed
    its connections at once, and logging in again is refused). The process exits with
    EXIT_CREDENTIAL_REFUSED, which its supervisor does not restart; its running jobs are lost with
    it, as with any worker cut off. Refusals for less than `grace_s` are waited out: a broker that
    restarted empty refuses every worker until the control plane has made their users again."""

    def __init__(self, client: redis.Redis, interval: float, grace_s: float) -> None:
        super().__init__(name="credential-watch", daemon=True)
        self.client, self.interval, self.grace_s = client, interval, grace_s
        self.refused_since: float | None = None

    def run(self) -> None:
        while True:
            self.check()
            time.sleep(self.interval)

    def check(self) -> None:
        try:
            self.client.ping()
            self.refused_since = None
        except (redis.AuthenticationError, redis.exceptions.NoPermissionError) as refused:
            now = time.monotonic()
            self.refused_since = self.refused_since or now
            if now - self.refused_since >= self.grace_s:
                logger.error("the broker keeps refusing this worker's credential (%s): revoked", refused)
                logging.shutdown()
                os._exit(EXIT_CREDENTIAL_REFUSED)
            logger.warning("the broker refused this worker's credential (%s); checking again", refused)
        except redis.RedisError:
            pass  # the broker is away: Celery and the reports wait for it

    def wait_until_accepted(self) -> None:
        """Before starting: the credential works, or the process exits after the grace period."""
        while True:
            self.check()
            if self.refused_since is None:
                return
            time.sleep(self.interval)


def resolve_credential(config: WorkerConfig) -> credentials.Credential:
    """The credential given in BROKER_URL, else the one kept from an earlier join, else a new one
    bought with the join token. Without any, the worker cannot take part in the fleet: exit."""
    if not re.match(names.WORKER_ID_PATTERN, config.worker_id):
        _refuse(f"worker id {config.worker_id!r} must match {names.WORKER_ID_PATTERN}")
    given = credentials.from_broker_url(config.worker_id, config.broker_url)
    if given is not None:
        return given
    kept = Path(config.credentials_dir) / f"{config.worker_id}.json"
    saved = credentials.load(kept)
    if saved is not None:
        return saved
    if not (config.join_token and config.api_url):
        _refuse(
            "no credential: join the fleet with --join-token and --api-url (or WORKER_JOIN_TOKEN and "
            "JOBQUEUE_API_URL), or give the worker's own broker user in BROKER_URL"
        )
    try:
        credential = credentials.join(config.api_url, config.join_token, config.worker_id, config.machine_id)
    except credentials.JoinRefused as refused:
        _refuse(str(refused))
    credentials.save(kept, credential)
    logger.info(
        "joined the fleet as %s (pool %s); credential kept in %s", config.worker_id, credential.pool, kept
    )
    return credential


def _refuse(why: str) -> None:
    logger.error("%s", why)
    sys.exit(EXIT_CREDENTIAL_REFUSED)


def engine_health(connectors: dict[str, Connector]) -> JsonObject:
    """Healthy when every connector's engine answers its health check; else which one fails and why."""
    for connector in {id(c): c for c in connectors.values()}.values():
        try:
            healthy = connector.health()
            detail = "" if healthy else f"{connector.name}: health check failed"
        except Exception as exc:  # noqa: BLE001 (an engine's failure is what we report, whatever it is)
            healthy, detail = False, f"{connector.name}: {exc}"
        if not healthy:
            return {"healthy": False, "detail": detail[:2000]}
    return {"healthy": True, "detail": ""}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    config = parse_config(argv)
    logs.configure(config.log_level, config.log_format, worker_id=config.worker_id)
    if not config.gpus:
        logger.info("no NVIDIA GPU found: running on configured values (%.0f GB)", config.gpu_memory_gb)
    if not config.supervised and len(config.worker_slots_by_gpu) > 1:
        sys.exit(run_supervisor(argv, config))
    metrics.serve(config.metrics_port, config.metrics_host, config.gpu_index)
    credential = resolve_credential(config)
    # Celery's command line would take the broker from BROKER_URL over the credential's URL, and
    # nothing this process starts (engines, connectors) needs the join token or the broker's address.
    for name in ("BROKER_URL", "CELERY_BROKER_URL", "WORKER_JOIN_TOKEN"):
        os.environ.pop(name, None)
    if credential.pool:
        config.pool = credential.pool  # the join token's pool, whatever the flags say
    if credential.customers:
        config.customer_allowlist = credential.customers
    broker_url = credential.broker_url(config.broker_url)
    app.conf.broker_url = broker_url  # type: ignore[misc]  # Celery's settings are writable
    queue = names.worker_queue(config.worker_id)
    app.conf.task_queues = [Queue(queue, Exchange(""), routing_key=queue, no_declare=True)]
    broker = redis.Redis.from_url(broker_url, socket_timeout=5)
    credential_watch = CredentialWatch(broker, config.heartbeat_seconds, config.credential_grace_seconds)
    credential_watch.wait_until_accepted()
    connectors = build_connectors(config.connectors)
    instance_id = uuid.uuid4().hex
    reporter = Reporter(app, config.worker_id)
    cancel_watch = CancelWatch(broker, config.worker_id)
    runner = JobRunner(
        connectors,
        reporter,
        cancel_watch,
        hard_timeout_grace_s=config.hard_timeout_grace_seconds,
        on_stuck_job=_restart_after_stuck_job,
        result_max_bytes=config.result_max_bytes,
    )
    install_runner(runner)

    description = msgspec.convert(
        {**config.registration(instance_id, list(connectors)), "health": engine_health(connectors)},
        fleet.Description,
    )
    heartbeat = Heartbeat(reporter, description, runner, config.heartbeat_seconds)

    @signals.worker_ready.connect(weak=False)
    def on_ready(**_kwargs: object) -> None:
        reporter.register(description)
        heartbeat.start()
        credential_watch.start()
        logger.info(
            "worker %s ready on queue %s (pool=%s, job types=%s, gpu=%s %.0f GB)",
            config.worker_id,
            names.worker_queue(config.worker_id),
            config.pool,
            sorted(connectors),
            config.gpu_name or "none",
            config.gpu_memory_gb,
        )

    @signals.worker_shutting_down.connect(weak=False)
    def on_shutting_down(**_kwargs: object) -> None:
        # Warm shutdown: stop taking jobs at once; Celery lets the current one finish, and the
        # heartbeat goes on until then so that job's lease holds. A job still running when the
        # grace period ends is stopped and handed back, for another worker to run.
        try:
            reporter.deregister(instance_id)
        except Exception:
            logger.exception("could not deregister")
        hand_back = threading.Timer(config.shutdown_grace_seconds, runner.hand_back.set)
        hand_back.daemon = True
        hand_back.start()

    @signals.worker_shutdown.connect(weak=False)
    def on_shutdown(**_kwargs: object) -> None:
        heartbeat.stopped.set()

    app.worker_main(_celery_args(config))
    sys.exit(_exit_code)  # Celery's worker_main() does not return the worker's exit code


def _restart_after_stuck_job(job_id: str) -> None:
    """A connector thread that ignores its time limit cannot be killed: stop taking jobs, let the
    other slots finish (warm shutdown), and exit with EXIT_STUCK_JOB for the supervisor to restart us."""
    logger.error("job %s is stuck in its connector; shutting down for a restart", job_id)
    global _exit_code
    _exit_code = EXIT_STUCK_JOB
    celery_worker_state.should_stop = EXIT_STUCK_JOB  # type: ignore[assignment]  # Celery reads an exit code


def _celery_args(config: WorkerConfig) -> list[str]:
    return [
        "worker",
        "--queues",
        names.worker_queue(config.worker_id),
        "--hostname",
        f"{config.worker_id}@%h",
        "--pool",
        "solo" if config.slots == 1 else "threads",
        "--concurrency",
        str(config.slots),
        "--loglevel",
        config.log_level,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


if __name__ == "__main__":
    main()
