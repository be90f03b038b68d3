"""A consumer that applies a lane's Celery task messages in batches: many messages, one transaction.

GPU workers send their reports and heartbeats as ordinary Celery task messages (the wire contract
in `gpu_worker.protocol`). A Celery worker would run each as a task of its own, a transaction each;
at a thousand workers that is more than a core can apply. This consumer takes what has arrived (up to
`batch_max` messages, waiting at most `linger_s` after the first), hands the batch to an applier, and
acknowledges the messages only after the applier returned, i.e. after its transaction committed:

- killed mid-batch (SIGKILL), nothing is acknowledged; the broker redelivers the messages after the
  visibility timeout and the appliers' compare-and-set makes applying them again harmless;
- Postgres unreachable: the same batch is retried with backoff, for as long as it takes;
- a message the applier cannot apply (a bug, a malformed message) must not block the others: the
  batch is applied again one message at a time and the culprit is logged and dropped, as a failing
  Celery task's message would be.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from kombu import Connection, Exchange, Queue
from kombu.message import Message

from core.tasks import DATABASE_UNREACHABLE

logger = logging.getLogger(__name__)

IDLE_POLL_S = 1.0  # how often an idle consumer looks up to see whether it was asked to stop
RECONNECT_BACKOFF_S = 0.5  # the first wait after losing the broker, doubled up to the reports' maximum


@dataclass(frozen=True)
class TaskMessage:
    """One Celery task message, decoded (protocol 2: the task name in the headers, args in the body)."""

    task: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


Applier = Callable[[Sequence[TaskMessage]], None]


@dataclass
class ConsumerStats:
    batches: int = 0
    messages: int = 0
    dropped: int = 0
    retried: int = 0
    largest_batch: int = 0
    apply_seconds: float = 0.0
    by_task: dict[str, int] = field(default_factory=dict)


def decode(message: Message) -> TaskMessage:
    body = message.decode()
    task = (message.headers or {}).get("task")
    if not isinstance(task, str) or not isinstance(body, (list, tuple)) or len(body) < 2:
        raise TypeError("not a Celery protocol 2 task message")
    args, kwargs = body[0], body[1]
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
        raise TypeError("a task message whose args or kwargs are malformed")
    return TaskMessage(task, tuple(args), kwargs)


class BatchConsumer:
    """Consumes `queues` and applies what arrives in batches (see the module's docstring)."""

    def __init__(
        self,
        queues: Sequence[str],
        apply: Applier,
        *,
        batch_max: int | None = None,
        linger_s: float | None = None,
        broker_url: str | None = None,
    ) -> None:
        self.queue_names = list(queues)
        self.apply = apply
        self.batch_max = batch_max or settings.LANE_BATCH_MAX_MESSAGES
        self.linger_s = settings.LANE_BATCH_LINGER_SECONDS if linger_s is None else linger_s
        self.broker_url = broker_url or settings.CELERY_BROKER_URL
        self.stats = ConsumerStats()
        self._stopping = False
        self._pending: list[Message] = []

    def stop(self, *_signal: Any) -> None:
        """Finish (and acknowledge) the batch in hand, then return from `run`."""
        self._stopping = True

    def stop_on_signals(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.stop)

    def run(self) -> ConsumerStats:
        """Consume until stopped; rides out broker outages (unacknowledged messages stay in Redis)."""
        backoff = RECONNECT_BACKOFF_S
        while not self._stopping:
            connection = self._connection()
            try:
                self._consume(connection)
                backoff = RECONNECT_BACKOFF_S
            except connection.connection_errors as exc:
                self._broker_lost(exc, backoff)
                backoff = min(backoff * 2, settings.REPORT_RETRY_BACKOFF_MAX_SECONDS)
            finally:
                connection.release()
        return self.stats

    def _connection(self) -> Connection:
        return Connection(
            self.broker_url,
            transport=settings.CELERY_BROKER_TRANSPORT,
            transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        )

    def _broker_lost(self, exc: BaseException, backoff: float) -> None:
        # What was not acknowledged stays in Redis and is redelivered after the visibility timeout.
        logger.warning("broker connection lost (%s); reconnecting in %.1fs", exc, backoff)
        self._pending.clear()
        time.sleep(backoff)

    def _consume(self, connection: Connection) -> None:
        # Declared as Celery declares them, so either may create the queue first.
        queues = [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in self.queue_names]
        with connection.Consumer(
            queues, callbacks=[self._receive], accept=["json"], prefetch_count=self.batch_max
        ):
            while not self._stopping:
                if self._fill(connection):
                    self._apply_and_acknowledge()

    def _receive(self, _body: Any, message: Message) -> None:
        self._pending.append(message)

    def _fill(self, connection: Connection) -> bool:
        """Wait for a first message, then gather more for at most `linger_s`; True if any came."""
        if not self._pending and not _drain(connection, IDLE_POLL_S):
            return False
        deadline = time.monotonic() + self.linger_s
        while len(self._pending) < self.batch_max:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not _drain(connection, remaining):
                break
        return True

    def _apply_and_acknowledge(self) -> None:
        batch, self._pending = self._pending, []
        decoded: list[TaskMessage] = []
        for message in batch:
            try:
                decoded.append(decode(message))
            except Exception:
                logger.exception("dropping a message this lane cannot decode: %r", message.headers)
                self.stats.dropped += 1
        started = time.monotonic()
        self._apply_durably(decoded)
        self.stats.apply_seconds += time.monotonic() - started
        for message in batch:
            message.ack()
        self._count(decoded)

    def _apply_durably(self, batch: list[TaskMessage]) -> None:
        """Apply the batch, retrying while Postgres is unreachable; isolate a message that fails."""
        backoff = RECONNECT_BACKOFF_S
        while True:
            close_old_connections()  # as Django does around each request: drop a broken connection
            try:
                self._apply_isolating_failures(batch)
                return
            except DATABASE_UNREACHABLE as exc:
                self.stats.retried += 1
                logger.warning(
                    "database unreachable (%s); retrying %d messages in %.1fs", exc, len(batch), backoff
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, settings.REPORT_RETRY_BACKOFF_MAX_SECONDS)

    def _apply_isolating_failures(self, batch: list[TaskMessage]) -> None:
        try:
            self.apply(batch)
            return
        except DATABASE_UNREACHABLE:
            raise
        except Exception:
            if len(batch) == 1:
                logger.exception("dropping a %s message that cannot be applied: %r", batch[0].task, batch[0])
                self.stats.dropped += 1
                return
            logger.exception("a batch of %d failed; applying its messages one by one", len(batch))
        for message in batch:
            self._apply_isolating_failures([message])

    def _count(self, batch: list[TaskMessage]) -> None:
        stats = self.stats
        stats.batches += 1
        stats.messages += len(batch)
        stats.largest_batch = max(stats.largest_batch, len(batch))
        for message in batch:
            stats.by_task[message.task] = stats.by_task.get(message.task, 0) + 1


def _drain(connection: Connection, timeout: float) -> bool:
    """Deliver what has arrived to the consumer's callback; False when nothing came in `timeout`."""
    try:
        connection.drain_events(timeout=timeout)
    except TimeoutError:
        return False
    return True
