"""Where webhooks may go: http(s) only, and by default never to loopback, private, link-local,
metadata or other non-public addresses (SSRF). Checked when an endpoint is saved, on the resolved
addresses before each request, and on the address actually connected to (so a DNS answer that
changes between the check and the connection cannot slip through). Redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

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


# getaddrinfo has no timeout of its own: it runs here, and a caller waits WEBHOOK_DNS_TIMEOUT_SECONDS.
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to now; a name that does not answer in time does not resolve."""
    lookup = _resolver.submit(socket.getaddrinfo, host, port, proto=socket.IPPROTO_TCP)
    try:
        infos = lookup.result(timeout=settings.WEBHOOK_DNS_TIMEOUT_SECONDS)
    except TimeoutError:
        raise socket.gaierror(
            f"{host}: no DNS answer within {settings.WEBHOOK_DNS_TIMEOUT_SECONDS} s"
        ) from None
    return sorted({str(info[4][0]) for info in infos})


def check_target(url: str, *, unresolvable_ok: bool = False) -> None:
    """The URL's shape and every address its host resolves to now."""
    host, port = check_url_shape(url)
    try:
        addresses = resolve(host, port)
    except OSError as exc:
        if unresolvable_ok:
            return
        raise BlockedTarget("unresolvable_host", f"{host} does not resolve: {exc}") from exc
    for address in addresses:
        try:
            check_address(address)
        except BlockedTarget as exc:
            raise BlockedTarget(exc.code, f"{host} resolves to {exc}") from None


class _GuardedHTTPConnection(HTTPConnection):
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
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPConnectionPool,
            "https": _GuardedHTTPSConnectionPool,
        }


_sessions = threading.local()


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
