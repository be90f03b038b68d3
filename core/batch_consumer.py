"""A consumer that applies GPU workers' lane messages in batches: many messages, one transaction.

Each worker writes a lane's messages to a list of its own (`wire.names.lane_list`), which only its
broker user may push to: the list a message is taken from names its sender. A Celery worker would
run each message as a task of its own, a transaction each; at a thousand workers that is more than a
core can apply. This consumer takes what has arrived from the senders' lists (at most `share` of a
sender's messages per take, so a worker that floods fills its own list and delays no one else's
reports; at most `batch_max` in all, waiting at most `linger_s` after the first), decodes each at the
edge (`wire.edge`: typed, bounded, or refused), hands the decoded batch to an applier, and
acknowledges the messages only after the applier returned, i.e. after its transaction committed:

- a message too large, one that is not a message at all, too deep, of an unknown kind or breaking
  its types is refused alone — acknowledged, never applied — and counted against its sender; one that
  the applier cannot apply alone goes to the lanes' dead-letter list with its sender, as does one
  redelivered too often (a message that kills the consumer comes back after the visibility timeout:
  after `LANE_MAX_DELIVERIES` it comes back no more). Nothing a worker sends stops the consumer;
- killed mid-batch (SIGKILL), nothing is acknowledged; the broker redelivers the messages after the
  visibility timeout, to the list they came from, and the appliers' compare-and-set makes applying
  them again harmless;
- Postgres unreachable: the same batch is retried with backoff, for as long as it takes.

Which lists to look at: the broker announces every push (keyspace notifications, switched on when the
consumer connects; a subscriber only misses them while disconnected, and every connection starts by
looking at every active sender's lists), and every `LANE_SWEEP_SECONDS` every active sender's lists
are looked at anyway. A broker that refuses `CONFIG SET` is polled every `POLL_S` instead.

Messages are taken by one script per batch (`_TAKE_BATCH`) rather than by a kombu consumer: kombu
moves one message per BRPOP and records each in its unacknowledged set with another round trip. The
script keeps kombu's own bookkeeping (the unacknowledged hash and index, kombu's format), so kombu's
visibility-timeout restore, which this consumer also runs, puts a message back where it was taken from
(the anonymous exchange and the list's own name, whatever the message's envelope claims).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import signal
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import redis
from django.conf import settings
from django.db import close_old_connections
from kombu import Connection

from core.tasks import DATABASE_UNREACHABLE
from wire import edge, names
from wire.logs import redact

logger = logging.getLogger(__name__)

IDLE_WAIT_S = 1  # seconds an idle consumer blocks at most before it looks around
POLL_S = 0.05  # without keyspace notifications: how often every sender's lists are looked at
RECONNECT_BACKOFF_S = 0.5  # the first wait after losing the broker, doubled up to the reports' maximum
RESTORE_EVERY_S = 1.0  # how often to put back messages left unacknowledged past the visibility timeout
PRIORITY_SEPARATOR = "\x06\x16"  # kombu's Redis transport: a Celery queue's lists by priority step
PRIORITY_STEPS = (0, 3, 6, 9)
PUSHES = frozenset({b"lpush", b"rpush"})  # the keyspace events that put a message on a list
DELIVERIES_KEY = "lanes:deliveries"  # by delivery tag: how often a message was taken
DEAD_LETTERS_KEY = "lanes:dead"  # messages no consumer could apply, newest first, with their sender
_SENDER = re.compile(names.WORKER_ID_PATTERN)

# What the take script says of each message it took (the second field of each entry).
TAKEN, OVERSIZED, OVERFLOWED, DEAD = 0, 1, 2, 3

# KEYS: the unacknowledged hash, its index, the deliveries hash, the dead-letter list, then the lists
# to take from. ARGV: most messages, the time, most per list, most bytes per message, most waiting
# per list, most deliveries of one message, the dead-letter list's length.
# Returns entries of four (list index, what, record, message), then the index of each list
# that still holds messages. Nothing below may raise once a message is popped (a script's writes are
# not undone): what cannot be read is handed over unrecorded, to be refused.
_TAKE_BATCH = string.Template("""
local out, more = {}, {}
local most, now, share = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local max_bytes, max_waiting = tonumber(ARGV[4]), tonumber(ARGV[5])
local max_deliveries, dead_max = tonumber(ARGV[6]), tonumber(ARGV[7])
local taken = 0
local function emit(index, what, tag, payload)
  out[#out + 1] = index; out[#out + 1] = what; out[#out + 1] = tag; out[#out + 1] = payload
end
for i = 5, #KEYS do
  if taken >= most then more[#more + 1] = i - 4 else
    local list = KEYS[i]
    local popped = redis.call('RPOP', list, math.min(share, most - taken))
    if popped then
      for _, raw in ipairs(popped) do
        taken = taken + 1
        if #raw > max_bytes then
          emit(i - 4, $OVERSIZED, '', tostring(#raw))
        else
          local ok, message = pcall(cjson.decode, raw)
          local properties = ok and type(message) == 'table' and message['properties']
          local tag = type(properties) == 'table' and properties['delivery_tag']
          if type(tag) == 'string' then
            -- Recorded under its list too: a tag is the sender's to choose, and must not name
            -- another worker's message.
            tag = list .. ' ' .. tag
            local n = redis.call('HINCRBY', KEYS[3], tag, 1)
            if n > max_deliveries then
              redis.call('HDEL', KEYS[3], tag)
              redis.call('LPUSH', KEYS[4], cjson.encode({list = list, at = now, reason = 'redelivered',
                detail = 'taken ' .. n .. ' times', message = raw}))
              redis.call('LTRIM', KEYS[4], 0, dead_max - 1)
              emit(i - 4, $DEAD, tag, '')
            else
              redis.call('ZADD', KEYS[2], now, tag)
              redis.call('HSET', KEYS[1], tag, '[' .. raw .. ',"",' .. cjson.encode(list) .. ']')
              emit(i - 4, $TAKEN, tag, raw)
            end
          else
            emit(i - 4, $TAKEN, '', raw)
          end
        end
      end
      local waiting = redis.call('LLEN', list)
      if waiting > max_waiting then
        redis.call('LTRIM', list, -max_waiting, -1)
        emit(i - 4, $OVERFLOWED, '', tostring(waiting - max_waiting))
        waiting = max_waiting
      end
      if waiting > 0 then more[#more + 1] = i - 4 end
    end
  end
end
return {out, more}
""").substitute(TAKEN=TAKEN, OVERSIZED=OVERSIZED, OVERFLOWED=OVERFLOWED, DEAD=DEAD)


@dataclass(frozen=True)
class Refusal:
    """Messages of `sender` on `lane` that were not applied, and why (`wire.edge` or this module)."""

    lane: str
    sender: str
    reason: str
    amount: int = 1
    detail: str = ""


Applier = Callable[[Sequence[edge.Decoded]], None]
Refuser = Callable[[Sequence[Refusal]], None]


@dataclass
class ConsumerStats:
    batches: int = 0
    messages: int = 0
    refused: int = 0
    retried: int = 0
    largest_batch: int = 0


@dataclass
class _Lists:
    """The senders' lists that may hold messages: each list's name -> (lane, sender)."""

    lanes: Sequence[str]
    known: dict[str, tuple[str, str]] = field(default_factory=dict)
    dirty: dict[str, tuple[str, str]] = field(default_factory=dict)

    def all_senders(self, senders: Iterable[str]) -> None:
        self.known = {names.lane_list(lane, s): (lane, s) for s in senders for lane in self.lanes}
        self.dirty.update(self.known)

    def pushed(self, list_name: str) -> None:
        for lane in self.lanes:
            sender = names.lane_sender(lane, list_name)
            if sender is not None and _SENDER.match(sender):
                self.dirty[list_name] = (lane, sender)


class BatchConsumer:
    """Consumes the senders' lists of `lanes` and applies what arrives in batches (see the module's
    docstring). `senders` says which workers may be sending (their credentials are active)."""

    def __init__(
        self,
        lanes: Sequence[str],
        apply: Applier,
        *,
        senders: Callable[[], Iterable[str]],
        refuse: Refuser,
        batch_max: int | None = None,
        linger_s: float | None = None,
        broker_url: str | None = None,
        on_connect: Callable[[], object] | None = None,
    ) -> None:
        self.lanes = list(lanes)
        self.apply, self.refuse, self.senders = apply, refuse, senders
        # Run on every (re)connection, before consuming: whatever a broker that restarted lost.
        self.on_connect = on_connect
        self.batch_max = batch_max or settings.LANE_BATCH_MAX_MESSAGES
        # Serving several lanes, the most impatient one's linger.
        lingers = [settings.LANE_BATCH_LINGER_SECONDS.get(lane, 0.0) for lane in self.lanes]
        self.linger_s = min(lingers) if linger_s is None else linger_s
        self.broker_url = broker_url or settings.CELERY_BROKER_URL
        self.stats = ConsumerStats()
        self._stopping = False
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        self._unacked_key = str(options.get("unacked_key", "unacked"))
        self._unacked_index_key = str(options.get("unacked_index_key", "unacked_index"))
        self._lists = _Lists(self.lanes)
        self._rotation = 0
        # Set once it takes from the lanes (subscribed to the broker's announcements, or polling).
        self.listening = threading.Event()

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
                    client = redis.Redis.from_url(self.broker_url)
                    with contextlib.closing(self._subscribe(client)) as pushes:
                        self._consume(client, channel, pushes)
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
        """kombu's view of the same broker, to run kombu's restore of expired unacknowledged messages."""
        connection = Connection(
            self.broker_url,
            transport=settings.CELERY_BROKER_TRANSPORT,
            transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        )
        return _closing(connection, connection.channel())

    def _subscribe(self, client: redis.Redis) -> _Pushes:
        """The broker's announcements of pushes to the lanes' lists (inactive where the broker will not
        make them: the lists are then polled)."""
        if not enable_push_notifications(client):
            return _Pushes(None)
        pushes = client.pubsub(ignore_subscribe_messages=True)
        db = client.connection_pool.connection_kwargs.get("db", 0)
        pushes.psubscribe(*(f"__keyspace@{db}__:{lane}{names.LANE_SEPARATOR}*" for lane in self.lanes))
        return _Pushes(pushes)

    def _consume(self, client: redis.Redis, channel: Any, pushes: _Pushes) -> None:
        take = client.register_script(_TAKE_BATCH)
        restored_at = swept_at = 0.0
        sweep_every = settings.LANE_SWEEP_SECONDS if pushes.active else POLL_S
        self._await_subscription(pushes)
        self.listening.set()
        while not self._stopping:
            if time.monotonic() - restored_at >= RESTORE_EVERY_S:
                channel.qos.restore_visible(num=self.batch_max, interval=1)
                restored_at = time.monotonic()
            if time.monotonic() - swept_at >= sweep_every:
                self._lists.all_senders(self._active_senders())
                swept_at = time.monotonic()
            self._drain(pushes, timeout=0)
            batch = self._gather(take, pushes)
            if batch:
                self._apply_and_acknowledge(client, batch)
            elif not self._lists.dirty:
                self._drain(pushes, timeout=IDLE_WAIT_S if pushes.active else POLL_S)

    def _active_senders(self) -> list[str]:
        try:
            return list(self.senders())
        except DATABASE_UNREACHABLE as exc:  # keep the lists known so far; announced pushes still come
            logger.warning("could not read the active senders (%s)", exc)
            close_old_connections()
            return [sender for _, sender in self._lists.known.values()]

    def _drain(self, pushes: _Pushes, timeout: float) -> None:
        """Mark the lists the broker announced pushes to; wait up to `timeout` for the first."""
        if not pushes.active:
            time.sleep(timeout)
            return
        while (announced := pushes.get_message(timeout=timeout)) is not None:
            timeout = 0
            self._mark(announced)

    def _mark(self, announced: _Announcement) -> None:
        if announced.get("data") in PUSHES:
            self._lists.pushed(str(announced["channel"], "utf-8", "replace").partition(":")[2])

    def _await_subscription(self, pushes: _Pushes) -> None:
        """Return once the broker holds the subscription: its answer to a ping comes after it, so
        every push announced after this is seen (pushes announced meanwhile are marked)."""
        if not pushes.active:
            return
        pushes.pubsub.ping()
        deadline = time.monotonic() + IDLE_WAIT_S
        while (left := deadline - time.monotonic()) > 0:
            answer = pushes.get_message(timeout=left)
            if answer is not None and answer.get("type") == "pong":
                return
            if answer is not None:
                self._mark(answer)

    def _gather(self, take: Any, pushes: _Pushes) -> list[_Taken]:
        """What has arrived, up to `batch_max`; if that is less, once more after `linger_s`."""
        batch = self._take(take, self.batch_max)
        if batch and len(batch) < self.batch_max and self.linger_s > 0:
            time.sleep(self.linger_s)
            self._drain(pushes, timeout=0)
            batch += self._take(take, self.batch_max - len(batch))
        return batch

    def _take(self, take: Any, most: int) -> list[_Taken]:
        if not self._lists.dirty or most <= 0:
            return []
        lists = list(self._lists.dirty.items())
        start = self._rotation % len(lists)  # who goes first changes, so no sender is always last
        lists = lists[start:] + lists[:start]
        self._rotation += 1
        keys = [self._unacked_key, self._unacked_index_key, DELIVERIES_KEY, DEAD_LETTERS_KEY]
        taken, more = take(
            keys=keys + [name for name, _ in lists],
            args=[
                most,
                time.time(),
                settings.LANE_SENDER_SHARE,
                settings.LANE_MAX_MESSAGE_BYTES,
                settings.LANE_MAX_WAITING_PER_SENDER,
                settings.LANE_MAX_DELIVERIES,
                settings.LANE_DEAD_LETTERS_MAX,
            ],
        )
        self._lists.dirty = {lists[i - 1][0]: lists[i - 1][1] for i in more}
        return [
            _Taken(*lists[int(taken[n]) - 1][1], int(taken[n + 1]), taken[n + 2].decode(), taken[n + 3])
            for n in range(0, len(taken), 4)
        ]

    def _apply_and_acknowledge(self, client: redis.Redis, batch: list[_Taken]) -> None:
        decoded = [item.decoded() for item in batch]
        messages = [d for d in decoded if d.message is not None]
        refusals = [r for item, d in zip(batch, decoded, strict=True) if (r := item.refusal(d)) is not None]
        self._apply_durably(messages, client)
        tags = [item.tag for item in batch if item.tag and item.what == TAKEN]
        if tags:
            acknowledge = client.pipeline(transaction=False)
            acknowledge.zrem(self._unacked_index_key, *tags)
            acknowledge.hdel(self._unacked_key, *tags)
            acknowledge.hdel(DELIVERIES_KEY, *tags)
            acknowledge.execute()
        self._refused(refusals)
        self._count(messages)

    def _refused(self, refusals: list[Refusal]) -> None:
        if not refusals:
            return
        self.stats.refused += sum(r.amount for r in refusals)
        try:
            self.refuse(refusals)
        except Exception:  # counting must never stop the lane
            logger.exception("could not count %d refused message(s)", len(refusals))

    def _apply_durably(self, batch: list[edge.Decoded], client: redis.Redis) -> None:
        """Apply the batch, retrying while Postgres is unreachable; isolate a message that fails."""
        backoff = RECONNECT_BACKOFF_S
        while True:
            close_old_connections()  # as Django does around each request: drop a broken connection
            try:
                self._apply_isolating_failures(batch, client)
                return
            except DATABASE_UNREACHABLE as exc:
                self.stats.retried += 1
                logger.warning(
                    "database unreachable (%s); retrying %d messages in %.1fs", exc, len(batch), backoff
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, settings.REPORT_RETRY_BACKOFF_MAX_SECONDS)

    def _apply_isolating_failures(self, batch: list[edge.Decoded], client: redis.Redis) -> None:
        if not batch:
            return
        try:
            self.apply(batch)
            return
        except DATABASE_UNREACHABLE:
            raise
        except Exception as error:
            if len(batch) == 1:
                self._dead_letter(batch[0], error, client)
                return
            logger.exception("a batch of %d failed; applying its messages one by one", len(batch))
        for message in batch:
            self._apply_isolating_failures([message], client)

    def _dead_letter(self, decoded: edge.Decoded, error: Exception, client: redis.Redis) -> None:
        """A message the applier cannot apply: kept in the dead-letter list with its sender (its
        secret masked), acknowledged, counted against the sender."""
        assert decoded.message is not None
        task, why = decoded.message.task, redact(f"{type(error).__name__}: {error}")[:500]
        logger.error("a %s message from %s cannot be applied: %s", task, decoded.sender, why, exc_info=error)
        entry = {
            "list": names.lane_list(decoded.lane, decoded.sender),
            "at": time.time(),
            "reason": "apply_failed",
            "detail": why,
            "task": task,
            "message": edge.kwargs_repr(decoded.message),
        }
        with contextlib.suppress(redis.RedisError):
            pipeline = client.pipeline(transaction=False)
            pipeline.lpush(DEAD_LETTERS_KEY, json.dumps(entry))
            pipeline.ltrim(DEAD_LETTERS_KEY, 0, settings.LANE_DEAD_LETTERS_MAX - 1)
            pipeline.execute()
        self._refused([Refusal(decoded.lane, decoded.sender, "apply_failed", detail=task)])

    def _count(self, batch: list[edge.Decoded]) -> None:
        stats = self.stats
        stats.batches += 1
        stats.messages += len(batch)
        stats.largest_batch = max(stats.largest_batch, len(batch))


@dataclass(frozen=True)
class _Taken:
    """One entry of the take script's answer."""

    lane: str
    sender: str
    what: int
    tag: str  # what the message is recorded under while unacknowledged: its list and delivery tag
    raw: bytes

    def decoded(self) -> edge.Decoded:
        if self.what != TAKEN:
            return edge.Decoded(self.lane, self.sender, None, None)
        return edge.decode(self.raw, self.lane, self.sender)

    def refusal(self, decoded: edge.Decoded) -> Refusal | None:
        if self.what == OVERSIZED:
            return Refusal(self.lane, self.sender, edge.OVERSIZED, detail=f"{self.raw.decode()} bytes")
        if self.what == OVERFLOWED:
            return Refusal(self.lane, self.sender, "overflowed", int(self.raw))
        if self.what == DEAD:
            return Refusal(self.lane, self.sender, "redelivered_too_often", detail=self.tag)
        if decoded.refusal is not None:
            return Refusal(self.lane, self.sender, decoded.refusal, detail=decoded.detail)
        return None


class _Announcement(TypedDict):
    """A keyspace notification, as redis-py's pubsub hands it over."""

    type: str
    pattern: bytes | None
    channel: bytes
    data: bytes | int


class _Pushes:
    """The broker's announcements of pushes, if it makes them (`active`)."""

    def __init__(self, pubsub: Any) -> None:
        self.pubsub = pubsub
        self.active = pubsub is not None

    def get_message(self, timeout: float) -> _Announcement | None:
        return self.pubsub.get_message(timeout=timeout)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.pubsub is not None:
            self.pubsub.close()


def enable_push_notifications(client: redis.Redis) -> bool:
    """Have the broker announce pushes to lists (keyspace events `K` and `l`), keeping whatever else
    it announces; False where it refuses (a managed Redis without CONFIG)."""
    try:
        answer: Any = client.config_get("notify-keyspace-events")
        flags = str(answer.get("notify-keyspace-events", ""))
        missing = "".join(flag for flag in "Kl" if flag not in flags and not (flag == "l" and "A" in flags))
        if missing:
            client.config_set("notify-keyspace-events", flags + missing)
        return True
    except redis.ResponseError as refused:
        logger.warning("the broker will not announce pushes (%s): polling the lanes' lists", refused)
        return False


def queue_lists(queue: str) -> list[str]:
    """The Redis lists that hold a Celery queue's waiting messages, one per kombu priority step."""
    return [f"{queue}{PRIORITY_SEPARATOR}{step}" if step else queue for step in PRIORITY_STEPS]


def lane_backlog(client: redis.Redis, lane: str, senders: Iterable[str]) -> int:
    """Messages waiting on `lane`, all senders' lists together."""
    pipeline = client.pipeline(transaction=False)
    for sender in senders:
        pipeline.llen(names.lane_list(lane, sender))
    return sum(pipeline.execute())


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
