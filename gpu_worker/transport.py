"""Kombu's Redis transport, made safe for a broker that goes away while messages are unacknowledged.

When the connection to Redis drops, kombu closes the channel and tries to put its unacknowledged
messages back on their queues, with a connection it no longer has: an AttributeError that Celery
treats as unrecoverable, so the worker process exits (the kombu bug behind celery/kombu#582). Here:

- `ControlPlaneTransport` (control worker, API, beat) restores them when it still can, and otherwise
  leaves them to be redelivered after the visibility timeout, instead of dying.
- `GpuWorkerTransport` never restores them: the control plane's lease decides whether an attempt was
  lost and runs it again under a new attempt number, so putting a stale attempt back on the worker's
  own queue would only run it twice.

No Django here: GPU workers import it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis, virtual

logger = logging.getLogger(__name__)


class SafeQoS(redis.QoS):
    """Acks and restores that find the connection gone are dropped instead of crashing the worker:
    the message then stays unacknowledged in Redis, if Redis still has it, for the visibility
    timeout (and a broker that restarted empty has nothing left to acknowledge)."""

    def _connection_gone(self) -> bool:
        transport = self.channel.connection
        return transport is None or transport.client is None

    def ack(self, delivery_tag: str) -> None:
        if self._connection_gone():
            logger.warning("broker connection lost before message %s was acknowledged", delivery_tag)
            return virtual.QoS.ack(self, delivery_tag)  # forget it locally only
        return super().ack(delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if self._connection_gone():
            return self.ack(delivery_tag)
        return super().reject(delivery_tag, requeue=requeue)

    def restore_unacked(self, client: Any = None) -> None:
        if client is None and self._connection_gone():
            logger.warning(
                "broker connection lost with %d unacknowledged message(s); they are redelivered "
                "after the visibility timeout",
                len(self._delivered or ()),
            )
            if self._delivered is not None:
                self._delivered.clear()
            return None
        return super().restore_unacked(client)


class ReusingClientChannel(redis.Channel):
    """Kombu builds a new Redis client (not a connection: a client object, ~0.4 ms of CPU) for every
    acknowledgement and every delivery's bookkeeping; one per pool serves them all (clients are
    thread-safe, the pool holds the connections)."""

    QoS = SafeQoS
    _reused_client = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        reused = self._reused_client
        if reused is None or reused.connection_pool is not self.pool:
            reused = self._reused_client = self._create_client()  # type: ignore[attr-defined]  # kombu's, not in its stubs
        yield reused


class ControlPlaneChannel(ReusingClientChannel):
    pass


class GpuWorkerChannel(ReusingClientChannel):
    do_restore = False


class ControlPlaneTransport(redis.Transport):
    Channel = ControlPlaneChannel


class GpuWorkerTransport(redis.Transport):
    Channel = GpuWorkerChannel
