"""Benchmark: webhook deliveries from the event log to a fast local receiver.

Starts its own Postgres and Redis (embedded, free loopback ports), the API (to register the
endpoint), the webhook pump (`relay_events`) and 2 delivery workers (Celery, `webhooks` queue);
a receiver in this process answers 200 at once. Writes events straight into the log (in
transactions of 100 for a burst, one per transaction at `--rate`), and measures deliveries/s and the
latency from an event's commit to its arrival at the receiver, p50/p95. Prints a table and writes
JSON to bench/results/.

    .venv/bin/python bench/run_webhook_bench.py [--events 2000]        # a burst: throughput
    .venv/bin/python bench/run_webhook_bench.py --rate 20 --events 300  # steady: latency
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import requests
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run_bench import Stack, api_server_argv, machine_facts, measure_on, percentile, save_result  # noqa: E402
from bench.run_event_bench import _INSERT, EVENTS_PER_TRANSACTION  # noqa: E402
from devstack.embedded import port_is_open  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
DELIVERY_WORKERS = 2
DEADLINE_S = 300


class WebhookStack(Stack):
    """The API, the webhook pump and the delivery workers, on the benchmark's own servers."""

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}

    def _start_processes(self) -> None:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.base")  # the worker's queue name
        from webhooks.worker import delivery_worker_argv

        python = sys.executable
        self._spawn("api", api_server_argv(self.api_port))
        self._spawn("pump", [python, "manage.py", "relay_events"])
        for n in range(DELIVERY_WORKERS):
            self._spawn(f"delivery-{n}", delivery_worker_argv(f"bench-webhooks-{n}", log_level="WARNING"))
        deadline = time.monotonic() + 60
        while not port_is_open(self.api_port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start; see {self.data_dir}")
            time.sleep(0.1)


class Receiver:
    """Answers 200 at once and notes (event id, arrival time, event time) of each message."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[int, float, str]] = []
        lock = threading.Lock()
        arrivals = self.arrivals

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                arrived = time.time()
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()
                with lock:
                    arrivals.append((body["event_id"], arrived, body["timestamp"]))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def _run(stack: WebhookStack, key: str, events: int, rate: float) -> dict:
    receiver = Receiver()
    created = requests.post(
        f"http://127.0.0.1:{stack.api_port}/api/webhooks",
        json={"url": receiver.url, "event_types": ["job_progress"]},
        headers={"x-api-key": key},
        timeout=10,
    )
    created.raise_for_status()
    per_transaction = 1 if rate else EVENTS_PER_TRANSACTION
    started = time.time()
    with psycopg.connect(stack.pg.url, autocommit=False) as conn:
        for n in tqdm(range(events // per_transaction), desc=f"writing events (x{per_transaction})"):
            if rate:
                time.sleep(max(0.0, started + n / rate - time.time()))
            conn.execute(_INSERT, [str(uuid.uuid4()), per_transaction])
            conn.commit()
    with tqdm(total=events, desc="delivered") as bar:
        deadline = time.monotonic() + DEADLINE_S
        while len(receiver.arrivals) < events:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(receiver.arrivals)} of {events} delivered")
            bar.update(len(receiver.arrivals) - bar.n)
            time.sleep(0.1)
        bar.update(len(receiver.arrivals) - bar.n)
    receiver.server.shutdown()
    cpu = stack.cpu_seconds()
    latencies = [
        (arrived - datetime.fromisoformat(ts).timestamp()) * 1000 for _, arrived, ts in receiver.arrivals
    ]
    last = max(arrived for _, arrived, _ in receiver.arrivals)
    return {
        "events": events,
        "delivery_workers": DELIVERY_WORKERS,
        "events_per_transaction": per_transaction,
        "write_rate_per_s": rate or None,
        "deliveries": len(receiver.arrivals),
        "distinct_events_delivered": len({event_id for event_id, _, _ in receiver.arrivals}),
        "delivered_per_s": round(len(receiver.arrivals) / (last - started), 1),
        "commit_to_receiver_p50_ms": round(percentile(latencies, 50), 1),
        "commit_to_receiver_p95_ms": round(percentile(latencies, 95), 1),
        "cpu_seconds": {name: round(seconds, 1) for name, seconds in cpu.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=0, help="events/s, one per transaction (0: a burst)")
    args = parser.parse_args()
    events = args.events if args.rate else max(EVENTS_PER_TRANSACTION, args.events // 100 * 100)
    stack = WebhookStack(Path(tempfile.mkdtemp(prefix="jobqueue-webhook-bench-")), slots=1, api_workers=1)
    result = measure_on(stack, lambda stack, key: _run(stack, key, events, args.rate))
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        **result,
    }
    print(f"\nWebhooks: event log -> 1 endpoint, {DELIVERY_WORKERS} delivery workers, a local receiver")
    print(
        f"{'events written':<28} {result['events']:>7}  ({result['events_per_transaction']} per transaction)"
    )
    print(f"{'deliveries':<28} {result['deliveries']:>7}  ({result['delivered_per_s']}/s)")
    print(
        f"{'commit -> receiver latency':<28} p50 {result['commit_to_receiver_p50_ms']} ms, "
        f"p95 {result['commit_to_receiver_p95_ms']} ms"
    )
    print(f"{'CPU seconds':<28} " + ", ".join(f"{k} {v}" for k, v in result["cpu_seconds"].items()))
    save_result("webhooks", result)


if __name__ == "__main__":
    main()
