"""Benchmark: what one REST request costs under each HTTP server, side by side on the same servers.

Starts its own Postgres and Redis (embedded, free loopback ports), then the API under each server in
turn — uvicorn and granian serving the ASGI application (`settings.asgi`, which also carries the
WebSockets), gunicorn and granian serving the WSGI application (`settings.wsgi`, plain HTTP) — and
drives each with the same requests from concurrent clients: read a job, list jobs, submit a job (of
a type no worker runs, so the measure is the API alone). Rounds alternate the servers so the VM's
drift falls on all of them. Reports requests/s, latency and the server's CPU per request; prints a
table and writes JSON.

    .venv/bin/python bench/run_api_bench.py [--requests 600] [--clients 8] [--rounds 2] [--backlog 0]

`--backlog N` first copies the first job N times (of the same tenant and type, in Postgres), so
the list is read from a table of a real install's size, not a near-empty one.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import psutil
import psycopg
import requests
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run_bench import Stack, machine_facts, measure_on, percentile, save_result  # noqa: E402
from core.http_servers import HTTP_SERVERS, HttpServer  # noqa: E402
from devstack.embedded import free_port  # noqa: E402
from devstack.processes import stop_processes  # noqa: E402

NO_WORKER_TYPE = "bench-api"  # no worker runs it: a submission is the API's work alone
WARMUP_REQUESTS = 50
START_TIMEOUT_S = 60


@dataclass(frozen=True)
class Scenario:
    name: str
    send: Callable[[requests.Session, str, str], requests.Response]
    expected_status: int


def _scenarios() -> tuple[Scenario, ...]:
    return (
        Scenario("GET /api/jobs/{id}", lambda s, base, job: s.get(f"{base}/api/jobs/{job}", timeout=30), 200),
        Scenario(
            "GET /api/jobs?limit=20", lambda s, base, _: s.get(f"{base}/api/jobs?limit=20", timeout=30), 200
        ),
        Scenario(
            "POST /api/jobs",
            lambda s, base, _: s.post(f"{base}/api/jobs", json={"type": NO_WORKER_TYPE}, timeout=30),
            201,
        ),
    )


class ServersOnly(Stack):
    """Postgres, Redis, the schema and a key; no process of ours (each server is started in turn)."""

    def _start_processes(self) -> None:
        pass


class ApiUnderTest:
    """One HTTP server serving the API on the benchmark's Postgres and Redis."""

    def __init__(self, server: HttpServer, stack: Stack, workers: int) -> None:
        self.server, self.stack, self.workers = server, stack, workers
        self.base = f"http://127.0.0.1:{free_port()}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Self:
        log = open(self.stack.data_dir / f"api-{self.server.name}.log", "wb")
        port = int(self.base.rsplit(":", 1)[1])
        self.process = subprocess.Popen(
            self.server.argv("127.0.0.1", port, self.workers, quiet=True),
            cwd=ROOT,
            env=self.stack.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return self
            time.sleep(0.2)
        raise RuntimeError(f"{self.server.name} did not start; see {log.name}")

    def __exit__(self, *_exc: object) -> None:
        if self.process is not None:
            stop_processes([self.process])

    def cpu_seconds(self) -> float:
        """CPU time of the server's process tree so far."""
        assert self.process is not None
        root = psutil.Process(self.process.pid)
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = proc.cpu_times()
                total += times.user + times.system
        return total


def drive(api: ApiUnderTest, key: str, job_id: str, scenario: Scenario, count: int, clients: int) -> dict:
    """`count` requests from `clients` concurrent sessions, after a warm-up; latency and server CPU."""
    local = threading.local()

    def one(_: int) -> float:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.headers.update({"x-api-key": key})
        started = time.perf_counter()
        response = scenario.send(session, api.base, job_id)
        elapsed = time.perf_counter() - started
        if response.status_code != scenario.expected_status:
            raise RuntimeError(f"{scenario.name}: {response.status_code} {response.text[:200]}")
        return elapsed * 1000

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(WARMUP_REQUESTS)))
        cpu_before, started = api.cpu_seconds(), time.perf_counter()
        latencies = list(pool.map(one, range(count)))
        seconds, cpu = time.perf_counter() - started, api.cpu_seconds() - cpu_before
    return {
        "server": api.server.name,
        "scenario": scenario.name,
        "requests": count,
        "requests_per_s": round(count / seconds, 1),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "mean_ms": round(statistics.fmean(latencies), 2),
        "server_cpu_ms_per_request": round(cpu * 1000 / count, 2),
    }


def _a_job(api: ApiUnderTest, key: str) -> str:
    response = requests.post(
        f"{api.base}/api/jobs", json={"type": NO_WORKER_TYPE}, headers={"x-api-key": key}, timeout=30
    )
    response.raise_for_status()
    return response.json()["job_id"]


def _fill_backlog(stack: Stack, job_id: str, count: int) -> None:
    """`count` copies of the job, each with an id of its own, in one statement."""
    with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as db:
        columns = [
            row[0]
            for row in db.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobqueue_job'"
            )
            if row[0] != "id"
        ]
        listed = ", ".join(columns)
        db.execute(
            f"INSERT INTO jobqueue_job (id, {listed}) SELECT gen_random_uuid(), {listed} "
            "FROM jobqueue_job, generate_series(1, %s) WHERE id = %s",
            (count, job_id),
        )


def measure(stack: Stack, key: str, args: argparse.Namespace) -> list[dict]:
    """Every scenario on every server, `rounds` times, the servers' order reversed each round."""
    servers = [HTTP_SERVERS[name] for name in args.servers]
    scenarios = _scenarios()
    rows: list[dict] = []
    backlog = args.backlog
    with tqdm(total=args.rounds * len(servers) * len(scenarios), desc="server x scenario") as bar:
        for round_index in range(args.rounds):
            for server in servers if round_index % 2 == 0 else servers[::-1]:
                with ApiUnderTest(server, stack, args.workers) as api:
                    job_id = _a_job(api, key)
                    if backlog:
                        _fill_backlog(stack, job_id, backlog)
                        backlog = 0
                    for scenario in scenarios:
                        bar.set_postfix_str(f"{server.name}: {scenario.name}")
                        row = drive(api, key, job_id, scenario, args.requests, args.clients)
                        rows.append({**row, "round": round_index + 1})
                        bar.update()
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Per server and scenario: the median over rounds of each figure."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["server"], row["scenario"]), []).append(row)
    figures = ("requests_per_s", "p50_ms", "p95_ms", "server_cpu_ms_per_request")
    return [
        {
            "server": server,
            "scenario": scenario,
            **{f: round(statistics.median(r[f] for r in runs), 2) for f in figures},
        }
        for (server, scenario), runs in groups.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=600, help="requests per server and scenario")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client sessions")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the servers")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--servers", nargs="+", choices=sorted(HTTP_SERVERS), default=list(HTTP_SERVERS))
    parser.add_argument("--backlog", type=int, default=0, help="jobs in the table before measuring")
    args = parser.parse_args()

    stack = ServersOnly(Path(tempfile.mkdtemp(prefix="jobqueue-api-bench-")), slots=1, api_workers=1)
    rows = measure_on(stack, lambda stack, key: measure(stack, key, args))
    summary = summarize(rows)
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "config": {
            "requests": args.requests,
            "clients": args.clients,
            "rounds": args.rounds,
            "workers": args.workers,
            "backlog": args.backlog,
        },
        "runs": rows,
        "summary": summary,
    }
    _print_table(summary)
    save_result("api", result)


def _print_table(summary: list[dict]) -> None:
    print("\nOne REST request, by HTTP server (medians over rounds)")
    print(
        f"{'scenario':<24} {'server':<16} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'server CPU ms/req':>18}"
    )
    for row in sorted(summary, key=lambda r: (r["scenario"], r["server_cpu_ms_per_request"])):
        print(
            f"{row['scenario']:<24} {row['server']:<16} {row['requests_per_s']:>8} {row['p50_ms']:>8} "
            f"{row['p95_ms']:>8} {row['server_cpu_ms_per_request']:>18}"
        )


if __name__ == "__main__":
    main()
