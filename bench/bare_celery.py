"""The peer: bare Celery on the same broker, a no-op task that counts its completions in Redis."""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

BROKER_URL = os.environ["BENCH_BROKER_URL"]
COUNTER = "bench:bare:done"
FIRST = "bench:bare:first"
LAST = "bench:bare:last"
TOTAL = int(os.environ.get("BENCH_BARE_TOTAL", "0"))

app = Celery("bare", broker=BROKER_URL)
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=4, worker_hijack_root_logger=False)
_redis = redis.Redis.from_url(BROKER_URL)


@app.task(name="bench.noop")
def noop(i: int) -> None:
    _redis.setnx(FIRST, time.time())
    if _redis.incr(COUNTER) == TOTAL:
        _redis.set(LAST, time.time())
