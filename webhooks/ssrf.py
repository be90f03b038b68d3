"""Where webhooks may go: http(s) only, and by default never to loopback, private, link-local,
metadata or other non-public addresses (SSRF). Checked when an endpoint is saved, on the resolved
addresses before each request, and on the address actually connected to (so a DNS answer that
changes between the check and the connection cannot slip through). Redirects are never followed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from webhooks.dns import Unresolved, resolve

ALLOWED_SCHEMES = ("http", "https")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedTarget(Exception):
    """A webhook target that is not allowed; `code` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(cidr, strict=False) for cidr in settings.WEBHOOK_ALLOWED_NETWORKS]


# IPv6 prefixes that carry an IPv4 address in their last 32 bits and reach it through a translator
# (NAT64: RFC 6052's well-known prefix and RFC 8215's local-use one).
NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def check_address(address: str) -> None:
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    for candidate in (ip, *_embedded_ipv4(ip)):
        if any(candidate in network for network in _allowed_networks()):
            continue
        if not candidate.is_global or candidate.is_multicast:
            raise BlockedTarget(
                "blocked_address",
                f"{ip} is (or leads to) a loopback, private, link-local or otherwise non-public address",
            )


def _embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to: IPv4-mapped, NAT64, 6to4 and Teredo forms."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if any(ip in prefix for prefix in NAT64_PREFIXES):
        embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [address for address in embedded if address is not None]


def check_url_shape(url: str) -> tuple[str, int]:
    """Scheme and credentials; returns (host, port)."""
    parts = urlsplit(url)
    if parts.scheme not in ALLOWED_SCHEMES:
        raise BlockedTarget("unsupported_scheme", "only http and https URLs can receive webhooks")
    if parts.username or parts.password:
        raise BlockedTarget("credentials_in_url", "put credentials in the endpoint's headers, not its URL")
    if not parts.hostname:
        raise BlockedTarget("missing_host", "the URL has no host")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def check_target(url: str, *, unresolvable_ok: bool = False, tenant_id: int | None = None) -> None:
    """The URL's shape and every address its host resolves to now; Unresolved if it does not
    resolve now (unless `unresolvable_ok`)."""
    host, port = check_url_shape(url)
    try:
        addresses = resolve(host, port, tenant_id)
    except Unresolved:
        if unresolvable_ok:
            return
        raise
    for address in addresses:
        try:
            check_address(address)
        except BlockedTarget as exc:
            raise BlockedTarget(exc.code, f"{host} resolves to {exc}") from None


@dataclass
class Deadline:
    """When this thread's requests must have their answer by (`time.monotonic()`), and whether a
    request was cut off at it."""

    at: float
    passed: bool = False


_deadlines = threading.local()


@contextmanager
def total_deadline(seconds: float) -> Iterator[Deadline]:
    """Requests of this thread meanwhile have their answer (status line and headers) by `seconds`
    from now, however slowly the receiver sends it: a socket timeout bounds each read, so a receiver
    trickling its headers a byte at a time would hold the thread for ever; at the deadline its socket
    is shut, and the deadline says it passed."""
    _deadlines.current = deadline = Deadline(time.monotonic() + seconds)
    try:
        yield deadline
    finally:
        _deadlines.current = None


class _GuardedHTTPConnection(HTTPConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        deadline, sock = getattr(_deadlines, "current", None), self.sock
        if deadline is None or sock is None:
            return super().getresponse(*args, **kwargs)
        watchdog = threading.Timer(max(deadline.at - time.monotonic(), 0), _cut_off, (sock, deadline))
        watchdog.start()
        try:
            return super().getresponse(*args, **kwargs)
        finally:
            watchdog.cancel()

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        try:
            check_address(sock.getpeername()[0])
        except BlockedTarget:
            sock.close()
            raise
        return sock


class _GuardedHTTPSConnection(HTTPSConnection, _GuardedHTTPConnection):
    pass


class _GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPConnectionPool,
            "https": _GuardedHTTPSConnectionPool,
        }


_sessions = threading.local()


def _cut_off(sock: socket.socket, deadline: Deadline) -> None:
    deadline.passed = True
    with contextlib.suppress(OSError):  # already closed: nothing to stop
        sock.shutdown(socket.SHUT_RDWR)


def guarded_session() -> requests.Session:
    """This thread's session: connections kept alive per receiver, every connection checked."""
    session = getattr(_sessions, "session", None)
    if session is None:
        session = requests.Session()
        session.trust_env = False  # no proxy from the environment: the address checked is the one used
        adapter = _GuardedAdapter(max_retries=0, pool_maxsize=4)  # our schedule retries, not urllib3
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        _sessions.session = session
    return session
