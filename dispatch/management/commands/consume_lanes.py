"""`manage.py consume_lanes control fleet`: apply GPU workers' reports and the fleet's heartbeats in
batches, until stopped (SIGTERM finishes the batch in hand). Run one or more per lane; any number
may consume the same lane (every report is a compare-and-set, heartbeats lock in id order)."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from core.batch_consumer import BatchConsumer
from core.db import limit_sessions
from dispatch import refusals
from dispatch.lane_batches import apply_batch
from machines.credentials import active_worker_ids, sync_broker_users

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Consume control-plane lanes (reports, heartbeats) and apply their messages in batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("lanes", nargs="+", choices=settings.BATCHED_LANES)
        parser.add_argument("--batch-max", type=int, help="most messages per batch (LANE_BATCH_MAX_MESSAGES)")
        parser.add_argument(
            "--linger-ms", type=float, help="longest wait for more after a batch's first message"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        limit_sessions("control")
        linger_ms = options["linger_ms"]
        consumer = BatchConsumer(
            options["lanes"],
            apply_batch,
            senders=active_worker_ids,
            refuse=refusals.record,
            batch_max=options["batch_max"],
            linger_s=None if linger_ms is None else linger_ms / 1000,
            on_connect=sync_broker_users,  # a broker that restarted lost the workers' users
        )
        consumer.stop_on_signals()
        logger.info("consuming %s in batches of up to %d", ", ".join(options["lanes"]), consumer.batch_max)
        stats = consumer.run()
        logger.info(
            "stopped after %d messages in %d batches (largest %d, %d refused, %d retried)",
            stats.messages,
            stats.batches,
            stats.largest_batch,
            stats.refused,
            stats.retried,
        )
