"""Resolving receivers' names for webhooks: bounded in time, and shared fairly between tenants."""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from django.conf import settings


class Unresolved(OSError):
    """The host did not resolve now (no answer in time, a failing name server, the tenant's lookups
    all busy): a transient failure, retried on the delivery's schedule, never a blocked target."""


class _Resolver:
    """getaddrinfo has no timeout of its own: lookups run on a pool, and a caller waits at most
    WEBHOOK_DNS_TIMEOUT_SECONDS. A lookup that hangs holds its thread until the system gives up, so
    each tenant may hold at most WEBHOOK_DNS_LOOKUPS_PER_TENANT threads at once: one tenant's dead
    name server slows its own deliveries, never another tenant's."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=settings.WEBHOOK_DNS_THREADS, thread_name_prefix="webhook-dns"
        )
        self._held: dict[int | None, int] = {}
        self._lock = threading.Lock()

    def resolve(self, host: str, port: int, tenant_id: int | None) -> list[str]:
        with self._lock:
            if self._held.get(tenant_id, 0) >= settings.WEBHOOK_DNS_LOOKUPS_PER_TENANT:
                raise Unresolved(f"{host}: this tenant's DNS lookups are all still waiting for answers")
            self._held[tenant_id] = self._held.get(tenant_id, 0) + 1
        try:
            lookup = self._pool.submit(socket.getaddrinfo, host, port, proto=socket.IPPROTO_TCP)
        except BaseException:
            self._release(tenant_id)
            raise
        lookup.add_done_callback(lambda _: self._release(tenant_id))  # when the thread is free again
        try:
            infos = lookup.result(timeout=settings.WEBHOOK_DNS_TIMEOUT_SECONDS)
        except TimeoutError:
            raise Unresolved(
                f"{host}: no DNS answer within {settings.WEBHOOK_DNS_TIMEOUT_SECONDS} s"
            ) from None
        except OSError as exc:
            raise Unresolved(f"{host}: {exc}") from exc
        return sorted({str(info[4][0]) for info in infos})

    def _release(self, tenant_id: int | None) -> None:
        with self._lock:
            self._held[tenant_id] -= 1
            if not self._held[tenant_id]:
                del self._held[tenant_id]


@lru_cache(maxsize=1)
def _resolver() -> _Resolver:
    return _Resolver()  # on first use: settings are read then


def resolve(host: str, port: int, tenant_id: int | None = None) -> list[str]:
    """The addresses `host` resolves to now, or Unresolved."""
    return _resolver().resolve(host, port, tenant_id)
