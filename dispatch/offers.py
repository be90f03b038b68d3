"""Offers of work the fleet lane asks for and the control plane's sweeps worker makes.

A worker that registers, or comes back from offline, is offered work. The fleet lane must not make
that offer itself: it applies liveness (heartbeats), and an offer reads the pending set, so a join
storm's offers would hold back the heartbeats behind them until live workers looked silent. The lane
adds the workers to one set in the broker after its batch committed and, when any of them was not
already there, asks for the offer task (`jobqueue.offer_work`); the task empties the set, offering
each worker once. A worker is in the set at most once, so it has at most one offer pending however
often it is asked for. A set lost with the broker costs nothing lasting: the dispatch sweep offers
every free worker with work it can run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis

from core.redis import redis_client
from dispatch.assignment import fill_worker

logger = logging.getLogger(__name__)

PENDING_KEY = "dispatch:offers"
OFFER_TASK = "jobqueue.offer_work"
TAKE = 100  # workers taken from the set at once


def request(worker_ids: Iterable[str]) -> None:
    """Ask for these workers to be offered work (after the caller's changes committed)."""
    ids = sorted(set(worker_ids))
    if not ids:
        return
    try:
        added = redis_client().sadd(PENDING_KEY, *ids)
        if added:
            from core.celery_app import app

            app.send_task(OFFER_TASK)
    except (redis.RedisError, OSError):
        logger.warning("could not ask for %d offer(s) of work; the dispatch sweep will make them", len(ids))


def make_pending() -> int:
    """Offer work to every worker waiting for an offer; returns how many were offered."""
    offered = 0
    while taken := redis_client().spop(PENDING_KEY, TAKE):
        for worker_id in sorted(raw.decode() if isinstance(raw, bytes) else raw for raw in taken):
            fill_worker(worker_id)
            offered += 1
    return offered
