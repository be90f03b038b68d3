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

Messages are taken from kombu's Redis lists by one script per batch (`_TAKE_BATCH`) rather than by a
kombu consumer: kombu moves one message per BRPOP and records each in its unacknowledged set with
another round trip (measured: ~0.8 ms of CPU per message, more than applying it). The script keeps
kombu's own bookkeeping (the unacknowledged hash and index, kombu's format), so publishers, Flower and
kombu's visibility-timeout restore, which this consumer also runs, work unchanged.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.db import close_old_connections
from kombu import Connection, Exchange, Queue

from core.tasks import DATABASE_UNREACHABLE

logger = logging.getLogger(__name__)

IDLE_WAIT_S = 1  # seconds an idle consumer of one lane blocks at most before it looks around
IDLE_POLL_S = 0.005  # how often a consumer of several lanes looks at the lanes it does not block on
RECONNECT_BACKOFF_S = 0.5  # the first wait after losing the broker, doubled up to the reports' maximum
RESTORE_EVERY_S = 1.0  # how often to put back messages left unacknowledged past the visibility timeout
PRIORITY_SEPARATOR = "\x06\x16"  # kombu's Redis transport: a queue's lists by priority step
PRIORITY_STEPS = (0, 3, 6, 9)

# KEYS: the unacknowledged hash, its index, then the lists to take from in order. ARGV: most
# messages, the time. Each message taken is recorded as kombu's own consumer records it, in the same
# script, so a consumer that dies right after holds them unacknowledged, never loses them.
_TAKE_BATCH = """
local taken = {}
local most = tonumber(ARGV[1])
for i = 3, #KEYS do
  if #taken >= most then break end
  local popped = redis.call('RPOP', KEYS[i], most - #taken)
  if popped then
    for _, raw in ipairs(popped) do
      -- Nothing below may raise once messages are popped (a script's writes are not undone):
      -- a message that is not kombu's envelope is handed over unrecorded, to be logged and dropped.
      local ok, message = pcall(cjson.decode, raw)
      local properties = ok and type(message) == 'table' and message['properties']
      local info = type(properties) == 'table' and properties['delivery_info']
      local tag = type(properties) == 'table' and properties['delivery_tag']
      if type(info) == 'table' and type(tag) == 'string' then
        redis.call('ZADD', KEYS[2], ARGV[2], tag)
        redis.call('HSET', KEYS[1], tag, '[' .. raw .. ',' .. cjson.encode(info['exchange'] or '') .. ','
          .. cjson.encode(info['routing_key'] or '') .. ']')
      end
      taken[#taken + 1] = raw
    end
  end
end
return taken
"""


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


@dataclass(frozen=True)
class Received:
    """A message taken from the broker: its delivery tag (to acknowledge it) and the task it carries."""

    delivery_tag: str | None  # None: not kombu's envelope (never recorded, nothing to acknowledge)
    message: TaskMessage | None  # None: not a task message this consumer can read


def decode(raw: bytes) -> Received:
    """kombu's envelope around a Celery protocol 2 task message: the task name in the headers, the
    (args, kwargs, embed) body, base64-encoded JSON."""
    tag = None
    try:
        envelope = json.loads(raw)
        tag = str(envelope["properties"]["delivery_tag"])
        body = envelope["body"]
        if envelope["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args, kwargs, *_ = json.loads(body)
        task = envelope["headers"]["task"]
        if not isinstance(task, str) or not isinstance(args, list) or not isinstance(kwargs, dict):
            raise TypeError("not a Celery protocol 2 task message")
    except (KeyError, TypeError, ValueError):
        logger.exception("dropping a message this lane cannot read: %r", raw[:200])
        return Received(tag, None)
    return Received(tag, TaskMessage(task, tuple(args), kwargs))


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
        on_connect: Callable[[], object] | None = None,
    ) -> None:
        self.queue_names = list(queues)
        self.apply = apply
        # Run on every (re)connection, before consuming: whatever a broker that restarted lost.
        self.on_connect = on_connect
        self.batch_max = batch_max or settings.LANE_BATCH_MAX_MESSAGES
        # Serving several lanes, the most impatient one's linger.
        lingers = [settings.LANE_BATCH_LINGER_SECONDS.get(queue, 0.0) for queue in self.queue_names]
        self.linger_s = min(lingers) if linger_s is None else linger_s
        self.broker_url = broker_url or settings.CELERY_BROKER_URL
        self.stats = ConsumerStats()
        self._stopping = False
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        self._unacked_key = str(options.get("unacked_key", "unacked"))
        self._unacked_index_key = str(options.get("unacked_index_key", "unacked_index"))
        # Lists in the order kombu's own consumer reads them: every queue's first priority step first.
        self._lists = [_list_for(queue, step) for step in PRIORITY_STEPS for queue in self.queue_names]

    def stop(self, *_signal: Any) -> None:
        """Finish (and acknowledge) the batch in hand, then return from `run`."""
        self._stopping = True

    def stop_on_signals(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.stop)

    def run(self) -> ConsumerStats:
        """Consume until stopped; rides out broker outages (what was taken and not acknowledged
        stays recorded in Redis and comes back after the visibility timeout)."""
        backoff = RECONNECT_BACKOFF_S
        while not self._stopping:
            try:
                with self._kombu_channel() as channel:
                    self._run_on_connect()
                    self._consume(redis.Redis.from_url(self.broker_url), channel)
                backoff = RECONNECT_BACKOFF_S
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                logger.warning("broker connection lost (%s); reconnecting in %.1fs", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, settings.REPORT_RETRY_BACKOFF_MAX_SECONDS)
        return self.stats

    def _run_on_connect(self) -> None:
        if self.on_connect is None:
            return
        try:
            self.on_connect()
        except Exception:  # the beat sweep does the same again soon; consuming matters more
            logger.exception(
                "%s failed on connecting to the broker", getattr(self.on_connect, "__name__", "hook")
            )

    def _kombu_channel(self) -> Any:
        """kombu's view of the same broker: to declare the queues as Celery does (the exchange
        bindings kombu's restore follows) and to run kombu's restore of expired unacknowledged
        messages."""
        connection = Connection(
            self.broker_url,
            transport=settings.CELERY_BROKER_TRANSPORT,
            transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        )
        channel = connection.channel()
        for name in self.queue_names:
            Queue(name, Exchange(name, type="direct"), routing_key=name)(channel).declare()
        return _closing(connection, channel)

    def _consume(self, client: redis.Redis, channel: Any) -> None:
        take = client.register_script(_TAKE_BATCH)
        restored_at = 0.0
        while not self._stopping:
            if time.monotonic() - restored_at >= RESTORE_EVERY_S:
                channel.qos.restore_visible(num=self.batch_max, interval=1)
                restored_at = time.monotonic()
            batch = self._gather(take)
            if batch:
                self._apply_and_acknowledge(client, batch)
            else:
                self._wait_for_messages(client)

    def _wait_for_messages(self, client: redis.Redis) -> None:
        """Block until a consumed lane has a message (or IDLE_WAIT_S passed, to run the restore and
        look at `stop`). BLMOVE of a list onto itself leaves it as it was; Redis wakes it on a push.
        Consuming several queues, this waits on the first one's list and polls the others."""
        if len(self.queue_names) == 1:
            client.blmove(self._lists[0], self._lists[0], IDLE_WAIT_S, "RIGHT", "RIGHT")
        else:
            time.sleep(IDLE_POLL_S)

    def _gather(self, take: Any) -> list[bytes]:
        """What has arrived, up to `batch_max`; if that is less, once more after `linger_s`."""
        batch: list[bytes] = self._take(take, self.batch_max)
        if batch and len(batch) < self.batch_max and self.linger_s > 0:
            time.sleep(self.linger_s)
            batch += self._take(take, self.batch_max - len(batch))
        return batch

    def _take(self, take: Any, most: int) -> list[bytes]:
        keys = [self._unacked_key, self._unacked_index_key, *self._lists]
        return list(take(keys=keys, args=[most, time.time()]))

    def _apply_and_acknowledge(self, client: redis.Redis, batch: list[bytes]) -> None:
        received = [decode(raw) for raw in batch]
        messages = [r.message for r in received if r.message is not None]
        self.stats.dropped += len(received) - len(messages)
        self._apply_durably(messages)
        tags = [r.delivery_tag for r in received if r.delivery_tag is not None]
        if tags:
            acknowledge = client.pipeline(transaction=False)
            acknowledge.zrem(self._unacked_index_key, *tags)
            acknowledge.hdel(self._unacked_key, *tags)
            acknowledge.execute()
        self._count(messages)

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
        if not batch:
            return
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


def queue_lists(queue: str) -> list[str]:
    """The Redis lists that hold a queue's waiting messages, one per priority step."""
    return [_list_for(queue, step) for step in PRIORITY_STEPS]


def _list_for(queue: str, step: int) -> str:
    return f"{queue}{PRIORITY_SEPARATOR}{step}" if step else queue


@contextlib.contextmanager
def _closing(connection: Connection, channel: Any) -> Iterator[Any]:
    try:
        yield channel
    finally:
        try:
            channel.close()
            connection.release()
        except Exception:  # the broker is gone: nothing left to close
            logger.debug("closing the kombu connection failed", exc_info=True)
