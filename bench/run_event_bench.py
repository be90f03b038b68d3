"""Benchmark: the event log to live WebSocket subscribers.

Starts its own Postgres and Redis (embedded, free loopback ports), the ASGI server and the event
relay; connects 50 `/ws` clients subscribed to everything; writes events in transactions of 100;
measures events/s written, events/s delivered (to all clients together), and the latency from an
event's commit to each client, p50/p95. Prints a table and writes JSON to bench/results/.

    .venv/bin/python bench/run_event_bench.py [--events 1000] [--subscribers 50]   # a burst: throughput
    .venv/bin/python bench/run_event_bench.py --rate 20 --events 200                 # steady: latency
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import websockets
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run_bench import (  # noqa: E402
    Stack,
    api_server_argv,
    machine_facts,
    measure_on,
    percentile,
    save_result,
)
from core.http_servers import DEFAULT_LIVE_SERVER  # noqa: E402
from devstack.embedded import port_is_open  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
EVENTS_PER_TRANSACTION = 100
DEADLINE_S = 300

_INSERT = """
    INSERT INTO jobqueue_event (type, version, created_at, job_id, correlation_id, payload)
    SELECT 'job_progress', 1, clock_timestamp(), %s::uuid, 'bench',
           jsonb_build_object('status', 'running', 'attempt', 1, 'progress', n %% 100, 'stage', '')
    FROM generate_series(1, %s) AS n
"""


class LiveStack(Stack):
    """The ASGI server and the event relay (no workers), on the benchmark's own servers."""

    def _start_processes(self) -> None:
        python = sys.executable
        self._spawn("api", api_server_argv(self.api_port, server=DEFAULT_LIVE_SERVER))  # the WebSockets
        self._spawn("relay", [python, "manage.py", "relay_events"])
        deadline = time.monotonic() + 60
        while not port_is_open(self.api_port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start; see {self.data_dir}")
            time.sleep(0.1)


async def _subscriber(
    url: str,
    expected: int,
    received: list[tuple[int, float, str]],
    ready: asyncio.Event,
    ready_count: list[int],
    subscribers: int,
) -> None:
    async with websockets.connect(url, max_size=None) as socket:
        json.loads(await socket.recv())  # authenticated
        await socket.send(json.dumps({"type": "subscribe_all"}))
        json.loads(await socket.recv())  # subscribed
        ready_count[0] += 1
        if ready_count[0] == subscribers:
            ready.set()
        seen = 0
        while seen < expected:
            message = json.loads(await asyncio.wait_for(socket.recv(), DEADLINE_S))
            if message.get("type") == "job_progress":
                received.append((message["data"]["id"], time.time(), message["data"]["created_at"]))
                seen += 1


async def _run(stack: LiveStack, key: str, events: int, subscribers: int, rate: float) -> dict:
    url = f"ws://127.0.0.1:{stack.api_port}/ws?api_key={key}"
    received: list[tuple[int, float, str]] = []
    ready, ready_count = asyncio.Event(), [0]
    tasks = [
        asyncio.create_task(_subscriber(url, events, received, ready, ready_count, subscribers))
        for _ in range(subscribers)
    ]
    await asyncio.wait_for(ready.wait(), 60)

    per_transaction = 1 if rate else EVENTS_PER_TRANSACTION

    def write() -> tuple[float, float]:
        started = time.time()
        with psycopg.connect(stack.pg.url, autocommit=False) as conn:
            for n in tqdm(range(events // per_transaction), desc=f"writing events (x{per_transaction})"):
                if rate:
                    time.sleep(max(0.0, started + n / rate - time.time()))
                conn.execute(_INSERT, [str(uuid.uuid4()), per_transaction])
                conn.commit()
        return started, time.time()

    write_started, write_finished = await asyncio.to_thread(write)
    await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE_S)
    latencies = [
        (arrived - datetime.fromisoformat(created).timestamp()) * 1000 for _, arrived, created in received
    ]
    last = max(arrived for _, arrived, _ in received)
    return {
        "events": events,
        "subscribers": subscribers,
        "events_per_transaction": per_transaction,
        "write_rate_per_s": rate or None,
        "written_per_s": round(events / (write_finished - write_started), 1),
        "delivered_per_s": round(len(received) / (last - write_started), 1),
        "deliveries": len(received),
        "write_to_client_p50_ms": round(percentile(latencies, 50), 1),
        "write_to_client_p95_ms": round(percentile(latencies, 95), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--rate", type=float, default=0, help="events/s, one per transaction (0: a burst)")
    args = parser.parse_args()
    events = args.events if args.rate else max(EVENTS_PER_TRANSACTION, args.events // 100 * 100)
    stack = LiveStack(Path(tempfile.mkdtemp(prefix="jobqueue-event-bench-")), slots=1, api_workers=1)
    result = measure_on(
        stack, lambda stack, key: asyncio.run(_run(stack, key, events, args.subscribers, args.rate))
    )
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        **result,
    }
    print(f"\nEvent log -> {result['subscribers']} WebSocket subscribers (subscribe_all)")
    print(
        f"{'events written':<34} {result['events']:>9}  ({result['written_per_s']}/s, "
        f"{result['events_per_transaction']} per transaction)"
    )
    print(
        f"{'deliveries (events x subscribers)':<34} {result['deliveries']:>9}  ({result['delivered_per_s']}/s)"
    )
    print(
        f"{'write -> client latency':<34} p50 {result['write_to_client_p50_ms']} ms, "
        f"p95 {result['write_to_client_p95_ms']} ms"
    )
    save_result("events", result)


if __name__ == "__main__":
    main()
