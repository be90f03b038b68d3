"""Fleet benchmark: N simulated GPU workers speaking the real wire protocol against the real control plane.

    .venv/bin/python bench/run_fleet_bench.py                      # the matrix: 10/100/1000 workers x backlog 0/10,000
    .venv/bin/python bench/run_fleet_bench.py --workers 1000 --backlog 10000 --seconds 60
    .venv/bin/python bench/run_fleet_bench.py --workers 1000 --backlog 10000 --backlog-shape shapes  # a real backlog
    .venv/bin/python bench/run_fleet_bench.py --workers 1000 --backlog 10000 --backlog-shape shapes \
        --job-seconds 2 --rate 200 --probe-batch 20 --seconds 60                                   # load

One process simulates the fleet: each worker registers with the real self-description
(`gpu_worker.config`), heartbeats every `--heartbeat-seconds` with the attempts it received, consumes
its own queue `worker.<id>` and reports each job's outcome after `--job-seconds`, all through the GPU
worker's own `Reporter`. With `--flood-rate R`, one more worker with a credential of its own pushes
junk to its own report lane at R messages a second while the run is measured. The control plane is the real one: the API, a worker per lane (control,
fleet, sweeps) and beat, on embedded Postgres and Redis. Probe jobs arrive over HTTP at `--rate` per
second; a backlog of jobs no worker can run is submitted first (POST /api/jobs/batch).

Every simulated worker starts at once (a join storm): how long until all are live, and the most shown
offline meanwhile, are measured too. Measured over the run: each lane's queue length, how stale the
registry's view of the workers is, workers the control plane wrongly thinks offline (the maximum over
every sample), submit->assigned and report->completed p50/p95/p99,
and CPU per message by process. Prints a table and writes bench/results/fleet-<time>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import itertools
import queue
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import redis
import requests
from celery import Celery
from kombu import Connection, Consumer, Exchange, Queue
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run_bench import Stack, api_server_argv, machine_facts, percentile, save_result  # noqa: E402
from core.celery_app import lane_consumer_argv, worker_argv  # noqa: E402
from gpu_worker.config import parse_config  # noqa: E402
from gpu_worker.reporter import Reporter  # noqa: E402
from wire import fleet, names  # noqa: E402

# As settings.CONTROL_PLANE_LANES (this process runs no Django): the batched lanes' consumers and the
# sweeps' Celery worker, a process each.
BATCHED_LANES = (names.CONTROL_LANE, names.FLEET_LANE)
SWEEPS_LANE = "sweeps"
UNRUNNABLE_TYPE = "fleet-bench-unrunnable"
SEEN_FOR_S = 120  # as the GPU worker: attempts received are listed in heartbeats this long
BATCH = 1000
SETTLE_DEADLINE_S = 300


class FleetStack(Stack):
    """The control plane only: API, a worker per lane, beat (for the lease sweep). No GPU worker."""

    def _start_processes(self) -> None:
        celery = [sys.executable, "-m", "celery", "-A", "settings.celery"]
        self._spawn("api", api_server_argv(self.api_port, self.api_workers, self.api_server))
        for lane in BATCHED_LANES:
            self._spawn(lane, lane_consumer_argv([lane]))
        self._spawn(SWEEPS_LANE, worker_argv(SWEEPS_LANE, SWEEPS_LANE, 1, "WARNING", "--without-heartbeat"))
        self._spawn("beat", [*celery, "beat", "-s", str(self.data_dir / "beat-schedule"), "-l", "WARNING"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the control plane did not come up; see logs in {self.data_dir}")


@dataclass
class SimulatedWorker:
    worker_id: str
    instance_id: str
    description: fleet.Description
    next_beat: float
    seen: dict[tuple[str, int], float] = field(default_factory=dict)

    def seen_attempts(self, now: float) -> list[tuple[str, int]]:
        for key in [k for k, at in self.seen.items() if now - at > SEEN_FOR_S]:
            del self.seen[key]
        return list(self.seen)


class Fleet:
    """The simulated workers: one consumer for every worker queue, one thread that publishes."""

    def __init__(self, broker_url: str, count: int, heartbeat_s: float, job_s: float) -> None:
        self.broker_url, self.heartbeat_s, self.job_s = broker_url, heartbeat_s, job_s
        self.app = Celery("fleet-bench", broker=broker_url)
        self.app.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
        self.reporters: dict[str, Reporter] = {}
        self.workers: dict[str, SimulatedWorker] = {}
        now = time.monotonic()
        for index in range(count):
            worker_id = _worker_id(index)
            config = parse_config(["--worker-id", worker_id, "--machine-id", f"sim-machine-{index // 8}"])
            instance_id = uuid.uuid4().hex
            description = msgspec.convert(config.registration(instance_id, ["simulation"]), fleet.Description)
            # Heartbeats start spread over one interval, as a fleet that came up over time.
            self.workers[worker_id] = SimulatedWorker(
                worker_id, instance_id, description, now + heartbeat_s * index / count
            )
            self.reporters[worker_id] = Reporter(self.app, worker_id)
        self.outbox: queue.Queue[tuple[float, str, Any]] = queue.Queue()
        self.due: list[tuple[float, int, str, str, int]] = []  # (when, tiebreak, worker, job, attempt)
        self.tiebreak = itertools.count()
        self.reported_at: dict[str, float] = {}  # job id -> wall time its outcome was sent
        self.leases: dict[tuple[str, int], str] = {}  # (job id, attempt) -> the lease its report carries
        self.messages = {"heartbeats": 0, "reports": 0}
        self.stop = threading.Event()

    def start(self) -> None:
        for worker_id, worker in self.workers.items():
            self.reporters[worker_id].register(worker.description)
        threading.Thread(target=self._consume, name="consume", daemon=True).start()
        threading.Thread(target=self._publish, name="publish", daemon=True).start()

    def _consume(self) -> None:
        queues = [
            Queue(
                names.worker_queue(w),
                Exchange(names.worker_queue(w)),
                routing_key=names.worker_queue(w),
            )
            for w in self.workers
        ]
        with (
            Connection(self.broker_url) as conn,
            Consumer(conn, queues=queues, callbacks=[self._on_job], accept=["json"]),
        ):
            while not self.stop.is_set():
                try:
                    conn.drain_events(timeout=0.5)
                except TimeoutError:
                    continue

    def _on_job(self, body: Any, message: Any) -> None:
        spec = body[1]["spec"]
        worker_id = message.delivery_info["routing_key"].removeprefix(names.WORKER_QUEUE_PREFIX)
        self.workers[worker_id].seen[(spec["job_id"], spec["attempt"])] = time.monotonic()
        self.leases[(spec["job_id"], spec["attempt"])] = spec[names.LEASE_ARG]
        self.outbox.put((time.monotonic() + self.job_s, worker_id, spec))
        message.ack()

    def _publish(self) -> None:
        while not self.stop.is_set():
            now = time.monotonic()
            while True:
                try:
                    when, worker_id, spec = self.outbox.get_nowait()
                except queue.Empty:
                    break
                heapq.heappush(
                    self.due, (when, next(self.tiebreak), worker_id, spec["job_id"], spec["attempt"])
                )
            while self.due and self.due[0][0] <= now:
                _, _, worker_id, job_id, attempt = heapq.heappop(self.due)
                lease = self.leases.pop((job_id, attempt))
                self.reporters[worker_id].succeeded(
                    job_id, attempt, lease, {"simulated": True}, int(self.job_s * 1000)
                )
                self.reported_at[job_id] = time.time()
                self.messages["reports"] += 1
            for worker in self.workers.values():
                if worker.next_beat <= now:
                    beat = fleet.Heartbeat(
                        instance_id=worker.instance_id,
                        seen_attempts=worker.seen_attempts(now),
                        sent_at=time.time(),
                        description=worker.description,
                    )
                    self.reporters[worker.worker_id].heartbeat(beat)
                    worker.next_beat += self.heartbeat_s
                    self.messages["heartbeats"] += 1
            time.sleep(0.005)


def _worker_id(index: int) -> str:
    return f"sim-{index:05d}"


FLOODER = "sim-flood"  # with --flood-rate: one more worker, with a credential, that floods its lane
# What it floods with: JSON nested 1,000 deep, a task message whose body is not base64, raw bytes.
JUNK = (
    b"[" * 1000 + b"]" * 1000,
    (
        b'{"body": "not base64!", "headers": {"task": "jobqueue.report_succeeded"}, '
        b'"properties": {"delivery_tag": "t"}}'
    ),
    b"\xff" * 512,
)


class Flooder(threading.Thread):
    """One worker pushing junk to its own report lane at `rate` messages a second until stopped: what
    a hostile host with a valid credential can do. Its reports must cost the others nothing."""

    def __init__(self, broker_url: str, rate: float) -> None:
        super().__init__(name="flooder", daemon=True)
        self.client, self.rate = redis.Redis.from_url(broker_url), rate
        self.lane = names.lane_list(names.CONTROL_LANE, FLOODER)
        self.sent = 0
        self.stop = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.stop.wait(0.01):
            due = int((time.monotonic() - started) * self.rate) - self.sent
            if due > 0:
                self.client.lpush(
                    self.lane, *(JUNK[n % len(JUNK)] for n in range(self.sent, self.sent + due))
                )
                self.sent += due


def _give_simulated_workers_credentials(stack: FleetStack, count: int) -> None:
    """Each simulated worker's credential, as joining would record it (only the control plane's
    records matter here: the simulated fleet publishes to each worker's own lanes with the broker's
    own user, where each real worker's broker user may write to its own only)."""
    rows = [
        (worker_id, hashlib.sha256(f"bench-secret-{worker_id}".encode()).hexdigest())
        for worker_id in [*(_worker_id(index) for index in range(count)), FLOODER]
    ]
    with psycopg.connect(stack.pg.url, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO machines_workercredential (worker_id, pool, customers, machine_id, secret_hash,"
            " created_at) VALUES (%s, 'standard', '[]', '', %s, now())",
            rows,
        )


def _wait_live(stack: FleetStack, count: int, offline_after_s: float) -> dict[str, Any]:
    """A join storm: every simulated worker starts at once. Waits until all are registered and live;
    returns how long that took and the most registered workers shown offline meanwhile (each is
    alive: any shown offline is wrongly so)."""
    started, worst = time.monotonic(), 0
    with psycopg.connect(stack.pg.url, autocommit=True) as conn:
        while time.monotonic() - started < SETTLE_DEADLINE_S:
            registered, live = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE status <> 'offline' AND "
                "last_seen_at >= now() - make_interval(secs => %s)) FROM machines_worker WHERE id LIKE 'sim-%%'",
                [offline_after_s],
            ).fetchone()
            worst = max(worst, registered - live)
            if live >= count:
                return {
                    "all_live_after_s": round(time.monotonic() - started, 1),
                    "offline_max_joining": worst,
                }
            time.sleep(0.5)
    raise RuntimeError(f"only {live} of {count} simulated workers live after {SETTLE_DEADLINE_S} s")


def _wait_settled(
    stack: FleetStack, one_second_of_traffic: float, count: int, offline_after_s: float
) -> dict:
    """Registering a fleet is a burst during which heartbeats may queue: measure the steady state, once
    the lanes hold less than a second of traffic. Returns the wait and the most workers wrongly shown
    offline during it."""
    lanes = redis.Redis.from_url(stack.redis.url)
    started, worst = time.monotonic(), 0
    while time.monotonic() - started < SETTLE_DEADLINE_S:
        sample = _sample(stack, lanes, count, offline_after_s)
        worst = max(worst, sample["wrongly_offline"])
        if all(waiting <= one_second_of_traffic for waiting in sample["lanes"].values()):
            return {"settled_after_s": round(time.monotonic() - started, 1), "offline_max_settling": worst}
        time.sleep(0.5)
    raise RuntimeError(f"the lanes did not drain within {SETTLE_DEADLINE_S} s of the registrations")


def _unmet_shapes(count: int = 50) -> list[dict[str, Any]]:
    """Jobs of the probes' own type in `count` shapes no simulated worker meets (they have no GPU
    memory, models or capabilities and serve no customer of their own): GPU memory, models,
    capabilities, customers under strict isolation, and mixes of GPU memory and models."""
    shapes: list[dict[str, Any]] = []
    for index in range(count):
        kind, requirements = index % 5, {}
        if kind in (0, 4):
            requirements["gpu_memory_gb"] = 8.0 * (index + 1)
        if kind in (1, 4):
            requirements["models"] = [f"bench-model-{index}"]
        if kind == 2:
            requirements["capabilities"] = [f"bench-capability-{index}"]
        job: dict[str, Any] = {"type": "simulation", "requirements": requirements}
        if kind == 3:
            job.update(customer_id=f"bench-customer-{index}", requirements={"customer_isolation": "strict"})
        shapes.append(job)
    return shapes


# The backlog's shapes: jobs of a type no worker runs (the pending set's index skips them for free), of
# the probes' own type needing a capability no worker has (every offer of work meets them), or of the
# probes' own type in 50 shapes no worker meets (as a real backlog: work waiting for bigger GPUs, models
# no live worker holds, customers whose machines are away).
BACKLOG_JOBS = {
    "type": [{"type": UNRUNNABLE_TYPE}],
    "same-type": [{"type": "simulation", "requirements": {"capabilities": [UNRUNNABLE_TYPE]}}],
    "shapes": _unmet_shapes(),
}


def _submit_backlog(stack: FleetStack, key: str, count: int, shape: str = "type") -> None:
    session = requests.Session()
    session.headers["x-api-key"] = key
    shapes = BACKLOG_JOBS[shape]
    for start in tqdm(range(0, count, BATCH), desc=f"backlog of {count}", disable=not count):
        jobs = [shapes[index % len(shapes)] for index in range(start, min(start + BATCH, count))]
        response = session.post(f"{stack.base}/api/jobs/batch", json={"jobs": jobs}, timeout=300)
        if response.status_code != 201:
            raise RuntimeError(f"backlog submit failed: {response.status_code} {response.text[:200]}")


def _lane_lengths(lanes: redis.Redis, count: int) -> dict[str, int]:
    """Messages waiting in each lane: the batched lanes summed over every simulated worker's own list."""
    workers = [_worker_id(index) for index in range(count)]
    pipeline = lanes.pipeline(transaction=False)
    for lane in BATCHED_LANES:
        for worker_id in workers:
            pipeline.llen(names.lane_list(lane, worker_id))
    pipeline.llen(SWEEPS_LANE)
    lengths = pipeline.execute()
    per_lane = len(workers)
    waiting = {lane: sum(lengths[i * per_lane : (i + 1) * per_lane]) for i, lane in enumerate(BATCHED_LANES)}
    return {**waiting, SWEEPS_LANE: lengths[-1]}


def _sample(stack: FleetStack, lanes: redis.Redis, count: int, offline_after_s: float) -> dict[str, Any]:
    with psycopg.connect(stack.pg.url, autocommit=True) as conn:
        stale = [
            row[0]
            for row in conn.execute(
                "SELECT extract(epoch FROM now() - last_seen_at) FROM machines_worker WHERE id LIKE 'sim-%%'"
            )
        ]
        (offline,) = conn.execute(
            "SELECT count(*) FROM machines_worker WHERE id LIKE 'sim-%%' AND (status = 'offline' "
            "OR last_seen_at < now() - make_interval(secs => %s))",
            [offline_after_s],
        ).fetchone()
    return {
        "lanes": _lane_lengths(lanes, count),
        "staleness_p95_s": round(float(percentile(stale, 95)), 2) if stale else None,
        "staleness_max_s": round(float(max(stale)), 2) if stale else None,
        "wrongly_offline": offline + max(0, count - len(stale)),
    }


def run_cell(args: argparse.Namespace, workers: int, backlog: int) -> dict[str, Any]:
    stack = FleetStack(Path(tempfile.mkdtemp(prefix="jobqueue-fleet-bench-")), slots=1, api_workers=1)
    key = stack.start()
    try:
        _submit_backlog(stack, key, backlog, args.backlog_shape)
        _give_simulated_workers_credentials(stack, workers)
        fleet = Fleet(stack.redis.url, workers, args.heartbeat_seconds, args.job_seconds)
        fleet.start()
        joining = _wait_live(stack, workers, args.offline_after_seconds)
        settling = _wait_settled(stack, workers / args.heartbeat_seconds, workers, args.offline_after_seconds)
        return {**_measure(stack, key, fleet, args, workers, backlog), **joining, **settling}
    except Exception:
        print(f"failed; logs in {stack.data_dir}", file=sys.stderr)
        raise
    finally:
        stack.stop()


def _measure(
    stack: FleetStack, key: str, fleet: Fleet, args: argparse.Namespace, workers: int, backlog: int
) -> dict:
    lanes = redis.Redis.from_url(stack.redis.url)
    session = requests.Session()
    session.headers["x-api-key"] = key
    probes: list[str] = []
    samples: list[dict[str, Any]] = []
    cpu_before, messages_before = stack.cpu_seconds(), dict(fleet.messages)
    flooder = Flooder(stack.redis.url, args.flood_rate)
    if args.flood_rate:
        flooder.start()
    started = time.monotonic()
    next_probe = next_sample = started
    with tqdm(total=int(args.seconds), desc=f"{workers} workers, backlog {backlog}") as bar:
        while (elapsed := time.monotonic() - started) < args.seconds:
            now = time.monotonic()
            if now >= next_probe:
                probes.extend(_submit_probes(stack, session, args.probe_batch))
                next_probe += args.probe_batch / args.rate
            if now >= next_sample:
                samples.append(
                    {
                        **_sample(stack, lanes, workers, args.offline_after_seconds),
                        "flood_lane": lanes.llen(flooder.lane),
                    }
                )
                next_sample += 1.0
                bar.n = int(elapsed)
                bar.refresh()
            time.sleep(0.005)
    flooder.stop.set()
    window_end = time.time()
    deadline = time.monotonic() + 120
    with psycopg.connect(stack.pg.url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            rows = conn.execute(
                "SELECT id::text, extract(epoch FROM assigned_at - created_at) * 1000, "
                "extract(epoch FROM completed_at) FROM jobqueue_job WHERE id = ANY(%s::uuid[])",
                [probes],
            ).fetchall()
            if all(row[2] is not None for row in rows):
                break
            time.sleep(0.5)
    fleet.stop.set()
    cpu_after = stack.cpu_seconds()
    assigned = [float(r[1]) for r in rows if r[1] is not None]
    completed = [
        (float(r[2]) - fleet.reported_at[r[0]]) * 1000
        for r in rows
        if r[2] is not None and r[0] in fleet.reported_at
    ]
    sent = {kind: fleet.messages[kind] - messages_before[kind] for kind in fleet.messages}
    total_messages = max(1, sum(sent.values()))
    return {
        "workers": workers,
        "backlog": backlog,
        "seconds": args.seconds,
        "probes": len(probes),
        "probes_completed": len(completed),
        "offered_per_s": round(len(probes) / args.seconds, 1),
        # Probes completed by the end of the measured time, per second of it: keeping up with the offer?
        "completed_in_time_per_s": round(
            sum(1 for r in rows if r[2] is not None and r[2] <= window_end) / args.seconds, 1
        ),
        "messages": sent,
        "lane_max": {lane: max(s["lanes"][lane] for s in samples) for lane in (*BATCHED_LANES, SWEEPS_LANE)},
        "lane_last": samples[-1]["lanes"],
        "staleness_p95_s": max((s["staleness_p95_s"] or 0) for s in samples),
        "staleness_max_s": max((s["staleness_max_s"] or 0) for s in samples),
        "wrongly_offline_max": max(s["wrongly_offline"] for s in samples),
        "timeline": samples,  # one sample a second: lanes, registry staleness, workers wrongly offline
        "submit_to_assigned_ms": _percentiles(assigned),
        "report_to_completed_ms": _percentiles(completed),
        "cpu_ms_per_message": {
            name: round((cpu_after[name] - cpu_before.get(name, 0.0)) * 1000 / total_messages, 3)
            for name in cpu_after
        },
        "flood": {
            "rate": args.flood_rate,
            "sent": flooder.sent,
            "refused": int(lanes.hget("jobqueue:refused_by_worker", FLOODER) or 0),
            "lane_max": max(s["flood_lane"] for s in samples),
        },
    }


def _submit_probes(stack: FleetStack, session: requests.Session, count: int) -> list[str]:
    """One probe job (POST /api/jobs), or `count` in one POST /api/jobs/batch (for high rates)."""
    if count == 1:
        return [
            session.post(f"{stack.base}/api/jobs", json={"type": "simulation"}, timeout=30).json()["job_id"]
        ]
    body = {"jobs": [{"type": "simulation"}] * count}
    results = session.post(f"{stack.base}/api/jobs/batch", json=body, timeout=30).json()["results"]
    return [result["job_id"] for result in results]


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "mean": None}
    return {
        "p50": round(percentile(values, 50), 1),
        "p95": round(percentile(values, 95), 1),
        "p99": round(percentile(values, 99), 1),
        "mean": round(statistics.fmean(values), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="*", default=[10, 100, 1000])
    parser.add_argument("--backlog", type=int, nargs="*", default=[0, 10_000], help="jobs no worker can run")
    parser.add_argument(
        "--backlog-shape",
        choices=sorted(BACKLOG_JOBS),
        default="type",
        help="a type no worker runs, the probes' type with a capability no worker has, or the probes'"
        " type in 50 shapes no worker meets",
    )
    parser.add_argument("--seconds", type=float, default=40, help="measured time per cell")
    parser.add_argument("--heartbeat-seconds", type=float, default=5.0)
    parser.add_argument("--job-seconds", type=float, default=0.0, help="how long a simulated job runs")
    parser.add_argument("--rate", type=float, default=5.0, help="probe jobs submitted per second")
    parser.add_argument(
        "--probe-batch", type=int, default=1, help="probes per request (POST /api/jobs/batch above 1)"
    )
    parser.add_argument(
        "--offline-after-seconds", type=float, default=30.0, help="WORKER_OFFLINE_AFTER_SECONDS"
    )
    parser.add_argument(
        "--flood-rate",
        type=float,
        default=0.0,
        help="junk messages a second one more worker pushes to its own report lane while measured",
    )
    args = parser.parse_args()
    cells = [run_cell(args, w, b) for w, b in itertools.product(args.workers, args.backlog)]
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "cells": cells,
    }
    _print_table(cells)
    save_result("fleet", result)


def _print_table(cells: list[dict[str, Any]]) -> None:
    print("\nFleet (simulated workers over the real protocol; probe jobs over HTTP)")
    header = (
        f"{'workers':>7} {'backlog':>8} {'hb/s':>6} {'control max':>11} {'fleet max':>9} {'fleet last':>10} "
        f"{'stale p95 s':>11} {'live after s':>12} {'offline max':>11} {'sub->asg p50/p95':>17} "
        f"{'rep->done p50/p95':>18} {'offered/done per s':>18}"
    )
    print(header)
    for c in cells:
        asg, done = c["submit_to_assigned_ms"], c["report_to_completed_ms"]
        assigned = f"{asg['p50']}/{asg['p95']}"
        completed = f"{done['p50']}/{done['p95']}"
        # Wrongly offline at any sample: joining, settling or measured.
        offline_max = max(c["offline_max_joining"], c["offline_max_settling"], c["wrongly_offline_max"])
        rates = f"{c['offered_per_s']}/{c['completed_in_time_per_s']}"
        print(
            f"{c['workers']:>7} {c['backlog']:>8} {c['messages']['heartbeats'] / c['seconds']:>6.0f} "
            f"{c['lane_max']['control']:>11} {c['lane_max']['fleet']:>9} {c['lane_last']['fleet']:>10} "
            f"{c['staleness_p95_s']:>11} {c['all_live_after_s']:>12} {offline_max:>11} "
            f"{assigned:>17} {completed:>18} {rates:>18}"
        )
    print("\nCPU ms per message (heartbeats + reports), by process")
    for c in cells:
        top = sorted(c["cpu_ms_per_message"].items(), key=lambda kv: -kv[1])[:4]
        print(
            f"  {c['workers']:>5} workers, backlog {c['backlog']:>6}: "
            + ", ".join(f"{n} {v}" for n, v in top)
        )
    for c in cells:
        flood = c["flood"]
        if flood["rate"]:
            print(
                f"\nFlood ({c['workers']} workers): one more worker pushed {flood['sent']} junk messages to its "
                f"own lane at {flood['rate']:.0f}/s; {flood['refused']} refused against it; its lane held at "
                f"most {flood['lane_max']} (the others' reports: rep->done above)"
            )


if __name__ == "__main__":
    main()
