"""Benchmark: submit latency, end-to-end throughput, and bare Celery on the same broker.

Starts its own Postgres and Redis (embedded, free loopback ports), the API (API_SERVER), the control
worker and two GPU-worker processes, measures, stops everything, prints a table and writes JSON.

    .venv/bin/python bench/run_bench.py [--jobs 2000] [--latency-requests 300] [--slots 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import psutil
import psycopg
import redis
import requests
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.celery_app import lane_consumer_argv  # noqa: E402
from core.http_servers import DEFAULT_API_SERVER, HTTP_SERVERS  # noqa: E402
from devstack.embedded import EmbeddedPostgres, EmbeddedRedis, free_port  # noqa: E402
from devstack.processes import stop_processes  # noqa: E402
from wire import names  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
CONCURRENCY_LEVELS = (1, 8, 32)
THROUGHPUT_CLIENTS = 16
BARE_TASKS = 20_000
DEADLINE_S = 300  # every wait below gives up after this
T = TypeVar("T")


class Stack:
    """Our system's processes, on the benchmark's own servers."""

    def __init__(
        self, data_dir: Path, slots: int, api_workers: int, api_server: str = DEFAULT_API_SERVER
    ) -> None:
        self.data_dir, self.slots, self.api_workers, self.api_server = (
            data_dir,
            slots,
            api_workers,
            api_server,
        )
        self.pg = EmbeddedPostgres(data_dir, free_port())
        self.redis = EmbeddedRedis(data_dir, free_port(), appendonly=False)
        self.api_port = free_port()
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.pg.url,
            "REDIS_URL": self.redis.url,
            "LOG_LEVEL": "WARNING",
            "JOBQUEUE_DATA_DIR": str(self.data_dir),
            "DJANGO_SETTINGS_MODULE": "settings.base",
        }

    def start(self) -> str:
        """Start the servers and the processes; returns an API key."""
        self.pg.start()
        self.redis.start()
        python = sys.executable
        subprocess.run([python, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=self.env, check=True)
        # An operator's key: it also reads the fleet, which says when the GPU workers are live.
        self.key = self._manage("create_api_key", "bench", "--role", "operator")
        self._start_processes()
        return self.key

    def _start_processes(self) -> None:
        python = sys.executable
        self._spawn("api", api_server_argv(self.api_port, self.api_workers, self.api_server))
        # Reports and heartbeats in one batch consumer (no beat, so no sweeps, in this benchmark).
        self._spawn("control", lane_consumer_argv([names.CONTROL_LANE, names.FLEET_LANE]))
        # The GPU workers join the fleet as rented hosts do: a join token, exchanged with the API.
        token = self._manage("create_join_token", "bench-hosts", "--pool", "standard", "--max-workers", "2")
        joining = {
            "WORKER_JOIN_TOKEN": token,
            "JOBQUEUE_API_URL": f"http://127.0.0.1:{self.api_port}",
            "WORKER_CREDENTIALS_DIR": str(self.data_dir / "worker-credentials"),
            "BROKER_URL": f"redis://127.0.0.1:{self.redis.port}/0",  # the address; not the credential
        }
        for index in range(2):
            argv = [python, "-m", "gpu_worker", "--worker-id", f"bench-gpu{index}"]
            self._spawn(f"gpu{index}", [*argv, "--slots", str(self.slots), "--log-level", "WARNING"], joining)
        self._wait_for_workers()

    def _manage(self, *command: str) -> str:
        argv = [sys.executable, "manage.py", *command]
        return subprocess.run(
            argv, cwd=ROOT, env=self.env, check=True, capture_output=True, text=True
        ).stdout.strip()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.data_dir / f"{name}.log", "wb")  # noqa: SIM115  (lives with the process)
        self.processes[name] = subprocess.Popen(
            argv, cwd=ROOT, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
        )

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by each component, its child processes included."""
        roots = {name: p.pid for name, p in self.processes.items()}
        roots.update(postgres=self.pg.process.pid, redis=self.redis.process.pid)
        usage = {}
        for name, pid in roots.items():
            usage[name] = 0.0
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(pid)
                for proc in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        times = proc.cpu_times()
                        usage[name] += times.user + times.system
        return usage

    def _wait_for_workers(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                answer = requests.get(f"{self.base}/api/workers", headers={"x-api-key": self.key}, timeout=2)
                if sum(w["status"] != "offline" for w in answer.json()["workers"]) == 2:
                    return
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the stack did not come up; see logs in {self.data_dir}")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def stop(self) -> None:
        stop_processes(self.processes.values())
        self.redis.stop()
        self.pg.stop()


def api_server_argv(port: int, workers: int = 1, server: str = DEFAULT_API_SERVER) -> list[str]:
    """The API under `server` (core.http_servers), quiet, as every benchmark starts it."""
    return HTTP_SERVERS[server].argv("127.0.0.1", port, workers, quiet=True)


def measure_on(stack: Stack, measure: Callable[[Stack, str], T]) -> T:
    """Start the stack, measure, stop it. On failure its process logs stay, and their folder is named."""
    try:
        measured = measure(stack, stack.start())
    except BaseException:
        print(f"\nbenchmark failed; process logs kept in {stack.data_dir}", file=sys.stderr)
        raise
    else:
        shutil.rmtree(stack.data_dir, ignore_errors=True)
    finally:
        stack.stop()
    return measured


def machine_facts() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def save_result(kind: str, result: dict) -> None:
    """bench/results/<kind>-<UTC time>.json"""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"{kind}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out.relative_to(ROOT)}")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def _submitter(base: str, key: str):
    local = threading.local()

    def submit(body: dict) -> float:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.headers.update({"x-api-key": key})
        started = time.perf_counter()
        response = session.post(f"{base}/api/jobs", json=body, timeout=30)
        elapsed = time.perf_counter() - started
        if response.status_code != 201:
            raise RuntimeError(f"submit failed: {response.status_code} {response.text[:200]}")
        return elapsed

    return submit


def measure_submit_latency(stack: Stack, key: str, requests_per_level: int) -> list[dict]:
    submit = _submitter(stack.base, key)
    rows = []
    for clients in CONCURRENCY_LEVELS:
        latencies: list[float] = []
        started = time.perf_counter()
        with (
            ThreadPoolExecutor(clients) as pool,
            tqdm(total=requests_per_level, desc=f"submit x{clients}") as bar,
        ):
            for latency in pool.map(lambda _: submit({"type": "simulation"}), range(requests_per_level)):
                latencies.append(latency * 1000)
                bar.update()
        rows.append(
            {
                "clients": clients,
                "requests": requests_per_level,
                "p50_ms": round(percentile(latencies, 50), 2),
                "p95_ms": round(percentile(latencies, 95), 2),
                "p99_ms": round(percentile(latencies, 99), 2),
                "mean_ms": round(statistics.fmean(latencies), 2),
                "jobs_per_s": round(requests_per_level / (time.perf_counter() - started), 1),
            }
        )
    _wait_until_drained(stack)
    return rows


BULK_JOB_TYPE = "bench-bulk"  # no worker runs it: the measure is the submission alone


def measure_bulk_submit(stack: Stack, key: str, batches: int, size: int) -> dict:
    """POST /api/jobs/batch from one client, `batches` times `size` jobs; jobs/s of the submissions."""
    session = requests.Session()
    session.headers.update({"x-api-key": key})
    body = {"jobs": [{"type": BULK_JOB_TYPE, "payload": {"n": i}} for i in range(size)]}
    seconds = []
    for _ in tqdm(range(batches), desc=f"bulk submit x{size}"):
        started = time.perf_counter()
        response = session.post(f"{stack.base}/api/jobs/batch", json=body, timeout=120)
        seconds.append(time.perf_counter() - started)
        if response.status_code != 201 or response.json()["created"] != size:
            raise RuntimeError(f"bulk submit failed: {response.status_code} {response.text[:200]}")
    with psycopg.connect(stack.pg.url, autocommit=True) as conn:
        conn.execute("DELETE FROM jobqueue_job WHERE type = %s", [BULK_JOB_TYPE])
    return {
        "batches": batches,
        "jobs_per_batch": size,
        "batch_p50_ms": round(percentile([s * 1000 for s in seconds], 50), 1),
        "jobs_per_s": round(batches * size / sum(seconds), 1),
    }


def _unfinished(stack: Stack) -> int:
    with psycopg.connect(stack.pg.url) as conn:
        return conn.execute(
            "SELECT count(*) FROM jobqueue_job WHERE status NOT IN ('completed', 'failed', 'cancelled')"
        ).fetchone()[0]


def _wait_until_drained(stack: Stack, bar: tqdm | None = None, total: int = 0) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while (left := _unfinished(stack)) and time.monotonic() < deadline:
        if bar is not None:
            bar.n = total - left
            bar.refresh()
        time.sleep(0.1)
    if left:
        raise RuntimeError(f"{left} jobs still unfinished after {DEADLINE_S}s")
    if bar is not None:
        bar.n = total
        bar.refresh()


def measure_throughput(stack: Stack, key: str, jobs: int) -> dict:
    with psycopg.connect(stack.pg.url, autocommit=True) as conn:
        mark = conn.execute("SELECT now()").fetchone()[0]
    submit = _submitter(stack.base, key)
    cpu_before = stack.cpu_seconds()
    with tqdm(total=jobs, desc="end-to-end (completed)") as bar:
        with ThreadPoolExecutor(THROUGHPUT_CLIENTS) as pool:
            list(pool.map(lambda _: submit({"type": "simulation"}), range(jobs)))
        _wait_until_drained(stack, bar, jobs)
    cpu_after = stack.cpu_seconds()
    with psycopg.connect(stack.pg.url) as conn:
        first, last, completed = conn.execute(
            "SELECT min(created_at), max(completed_at), count(*) FILTER (WHERE status = 'completed') "
            "FROM jobqueue_job WHERE created_at >= %s",
            [mark],
        ).fetchone()
        p50, p99 = conn.execute(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY completed_at - created_at),"
            "       percentile_cont(0.99) WITHIN GROUP (ORDER BY completed_at - created_at)"
            " FROM jobqueue_job WHERE created_at >= %s",
            [mark],
        ).fetchone()
    seconds = (last - first).total_seconds()
    return {
        "jobs": jobs,
        "completed": completed,
        "seconds": round(seconds, 2),
        "jobs_per_s": round(completed / seconds, 1),
        "submit_to_completed_p50_ms": round(p50.total_seconds() * 1000, 1),
        "submit_to_completed_p99_ms": round(p99.total_seconds() * 1000, 1),
        "cpu_ms_per_job": {
            name: round((cpu_after[name] - cpu_before.get(name, 0.0)) * 1000 / max(completed, 1), 2)
            for name in cpu_after
        },
    }


_STEP_GAPS = """
    SELECT extract(epoch FROM c.assigned_at - p.completed_at) * 1000,
           extract(epoch FROM c.started_at - p.completed_at) * 1000
    FROM jobqueue_jobdependency d
    JOIN jobqueue_job c ON c.id = d.job_id
    JOIN jobqueue_job p ON p.id = d.depends_on_id
    WHERE c.created_at >= %s
"""


def measure_workflow_step_overhead(stack: Stack, key: str, chains: int, steps: int) -> dict:
    """Chains of 0-second steps, no more chains than worker slots (so no step waits for a worker):
    the time from a parent's completion to its child's assignment and start is the engine's own."""
    with psycopg.connect(stack.pg.url, autocommit=True) as conn:
        mark = conn.execute("SELECT now()").fetchone()[0]
    chain = [{"type": "simulation", "name": "s0"}] + [
        {"type": "simulation", "name": f"s{i}", "depends_on": [f"s{i - 1}"]} for i in range(1, steps)
    ]
    with tqdm(total=chains * steps, desc="workflow chains (steps completed)") as bar:
        for _ in range(chains):
            response = requests.post(
                f"{stack.base}/api/workflows", json={"steps": chain}, headers={"x-api-key": key}, timeout=30
            )
            response.raise_for_status()
        _wait_until_drained(stack, bar, chains * steps)
    with psycopg.connect(stack.pg.url) as conn:
        gaps = conn.execute(_STEP_GAPS, [mark]).fetchall()
    to_assigned = [float(row[0]) for row in gaps]
    to_started = [float(row[1]) for row in gaps]
    return {
        "chains": chains,
        "steps_per_chain": steps,
        "dependent_steps": len(gaps),
        "parent_completed_to_child_assigned_p50_ms": round(percentile(to_assigned, 50), 1),
        "parent_completed_to_child_assigned_p95_ms": round(percentile(to_assigned, 95), 1),
        "parent_completed_to_child_running_p50_ms": round(percentile(to_started, 50), 1),
        "parent_completed_to_child_running_p95_ms": round(percentile(to_started, 95), 1),
    }


def measure_bare_celery(redis_url: str, tasks: int, data_dir: Path) -> dict:
    os.environ.update(BENCH_BROKER_URL=redis_url, BENCH_BARE_TOTAL=str(tasks))
    from bench import bare_celery

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    client = redis.Redis.from_url(redis_url)
    client.delete(bare_celery.COUNTER, bare_celery.FIRST, bare_celery.LAST)
    bare_celery.app.conf.broker_url = redis_url
    started = time.perf_counter()
    for i in tqdm(range(tasks), desc="bare celery enqueue"):
        bare_celery.noop.apply_async((i,), queue="bare")
    enqueue_rate = tasks / (time.perf_counter() - started)
    log = open(data_dir / "bare-celery.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.bare_celery",
            "worker",
            "-Q",
            "bare",
            "-c",
            "2",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + DEADLINE_S
        with tqdm(total=tasks, desc="bare celery drain") as bar:
            while client.get(bare_celery.LAST) is None and time.monotonic() < deadline:
                bar.n = int(client.get(bare_celery.COUNTER) or 0)
                bar.refresh()
                time.sleep(0.1)
            bar.n = tasks
            bar.refresh()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    first, last = client.get(bare_celery.FIRST), client.get(bare_celery.LAST)
    if last is None:
        raise RuntimeError("bare Celery did not finish in time")
    seconds = float(last) - float(first)
    return {
        "tasks": tasks,
        "enqueue_per_s": round(enqueue_rate),
        "seconds": round(seconds, 2),
        "tasks_per_s": round(tasks / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs for the end-to-end run")
    parser.add_argument("--latency-requests", type=int, default=300, help="submits per concurrency level")
    parser.add_argument("--slots", type=int, default=1, help="slots per GPU-worker process")
    parser.add_argument("--api-workers", type=int, default=1, help="API server processes")
    parser.add_argument("--api-server", choices=sorted(HTTP_SERVERS), default=DEFAULT_API_SERVER)
    parser.add_argument("--bare-tasks", type=int, default=BARE_TASKS)
    parser.add_argument("--chain-steps", type=int, default=25, help="steps per workflow chain")
    parser.add_argument("--bulk-batches", type=int, default=5, help="POST /api/jobs/batch requests")
    parser.add_argument("--bulk-size", type=int, default=1000, help="jobs per batch")
    args = parser.parse_args()

    stack = Stack(
        Path(tempfile.mkdtemp(prefix="jobqueue-bench-")), args.slots, args.api_workers, args.api_server
    )

    def measure(stack: Stack, key: str) -> tuple:
        return (
            measure_submit_latency(stack, key, args.latency_requests),
            measure_throughput(stack, key, args.jobs),
            measure_workflow_step_overhead(stack, key, chains=2 * args.slots, steps=args.chain_steps),
            measure_bulk_submit(stack, key, args.bulk_batches, args.bulk_size),
            measure_bare_celery(stack.redis.url, args.bare_tasks, stack.data_dir),
        )

    latency, throughput, workflow, bulk, bare = measure_on(stack, measure)
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "config": {
            "gpu_worker_processes": 2,
            "slots_per_worker": args.slots,
            "api_workers": args.api_workers,
            "api_server": args.api_server,
            "control_worker_concurrency": 2,
        },
        "submit_latency": latency,
        "end_to_end": throughput,
        "workflow_step_overhead": workflow,
        "bulk_submit": bulk,
        "bulk_to_single_submit": round(bulk["jobs_per_s"] / max(r["jobs_per_s"] for r in latency), 1),
        "bare_celery": bare,
        "ratio_ours_to_bare": round(throughput["jobs_per_s"] / bare["tasks_per_s"], 3),
    }
    _print_table(result)
    save_result("bench", result)


def _print_table(result: dict) -> None:
    print("\nSubmit latency (POST /api/jobs over HTTP, 0-second simulation jobs)")
    print(f"{'clients':>8} {'requests':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for row in result["submit_latency"]:
        print(
            f"{row['clients']:>8} {row['requests']:>9} {row['p50_ms']:>8} {row['p95_ms']:>8} {row['p99_ms']:>8}"
        )
    e2e, bare = result["end_to_end"], result["bare_celery"]
    print("\nThroughput")
    print(f"{'system':<44} {'items':>7} {'seconds':>8} {'per s':>8}")
    label = f"ours: submit->completed, 2 workers x {result['config']['slots_per_worker']} slot(s)"
    print(f"{label:<44} {e2e['completed']:>7} {e2e['seconds']:>8} {e2e['jobs_per_s']:>8}")
    print(
        f"{'bare Celery no-op drain, prefork -c 2':<44} {bare['tasks']:>7} {bare['seconds']:>8} {bare['tasks_per_s']:>8}"
    )
    print(f"\nours / bare Celery: {result['ratio_ours_to_bare']}")
    print(
        f"ours submit->completed latency p50 {e2e['submit_to_completed_p50_ms']} ms, "
        f"p99 {e2e['submit_to_completed_p99_ms']} ms (includes the backlog: submission outruns the workers)"
    )
    wf = result["workflow_step_overhead"]
    print(
        f"\nWorkflow step overhead ({wf['chains']} chains x {wf['steps_per_chain']} steps, "
        f"{wf['dependent_steps']} dependent steps)"
    )
    print(f"{'parent completed ->':<24} {'p50 ms':>8} {'p95 ms':>8}")
    for stage in ("assigned", "running"):
        p50 = wf[f"parent_completed_to_child_{stage}_p50_ms"]
        p95 = wf[f"parent_completed_to_child_{stage}_p95_ms"]
        print(f"{'child ' + stage:<24} {p50:>8} {p95:>8}")
    bulk = result["bulk_submit"]
    best = max(result["submit_latency"], key=lambda r: r["jobs_per_s"])
    print("\nSubmission rate (jobs/s; the submissions alone)")
    print(
        f"  single POST /api/jobs, best of the levels above ({best['clients']} clients): {best['jobs_per_s']}"
    )
    print(
        f"  POST /api/jobs/batch, {bulk['jobs_per_batch']} jobs, 1 client: {bulk['jobs_per_s']} "
        f"(batch p50 {bulk['batch_p50_ms']} ms) = {result['bulk_to_single_submit']}x"
    )
    print("\nCPU per completed job, by process (ms; the benchmark's own HTTP clients not included)")
    for name, ms in sorted(e2e["cpu_ms_per_job"].items(), key=lambda kv: -kv[1]):
        print(f"  {name:<10} {ms:>7}")
    print(f"  {'total':<10} {round(sum(e2e['cpu_ms_per_job'].values()), 2):>7}")


if __name__ == "__main__":
    main()
