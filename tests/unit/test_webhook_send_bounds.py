"""What one webhook attempt may cost: a name that does not resolve is a failure to retry (not a
blocked target), one tenant's hanging name server holds only its own share of the resolver, and a
receiver trickling its answer is cut off at the attempt's deadline (a real server on loopback)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from webhooks import dns
from webhooks.send import send


@pytest.fixture
def hanging_name_server(monkeypatch) -> Iterator[None]:
    """Names ending in `.dead` hang until the test ends; the rest resolve as the system does."""
    released = threading.Event()
    system_lookup = socket.getaddrinfo

    def lookup(host, *args, **kwargs):
        if str(host).endswith(".dead"):
            released.wait(10)
            raise socket.gaierror("no answer")
        return system_lookup(host, *args, **kwargs)

    monkeypatch.setattr(dns.socket, "getaddrinfo", lookup)
    yield
    released.set()


def test_a_name_that_does_not_resolve_is_a_failure_to_retry_not_a_blocked_target(settings):
    settings.WEBHOOK_DNS_TIMEOUT_SECONDS = 2
    result = send(
        "http://receiver.invalid/hook", "msg_1", "{}", ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], {}
    )

    assert not result.blocked and result.status_code is None
    assert result.error.startswith("DNS: receiver.invalid")


def test_one_tenants_hanging_name_server_holds_only_its_own_share_of_lookups(settings, hanging_name_server):
    settings.WEBHOOK_DNS_TIMEOUT_SECONDS = 0.2
    settings.WEBHOOK_DNS_LOOKUPS_PER_TENANT = 2
    for _ in range(2):  # each hangs on after its caller gave up on it
        with pytest.raises(dns.Unresolved, match="no DNS answer"):
            dns.resolve("hooks.tenant-one.dead", 443, tenant_id=1)

    started = time.monotonic()
    with pytest.raises(dns.Unresolved, match="all still waiting"):
        dns.resolve("other.tenant-one.dead", 443, tenant_id=1)
    refused_in = time.monotonic() - started

    assert refused_in < 0.1  # refused at once: it takes no thread from anyone
    assert dns.resolve("localhost", 443, tenant_id=2)  # another tenant resolves as ever


@pytest.fixture
def trickling_receiver() -> Iterator[str]:
    """A receiver that reads the request, then sends its status line and headers a byte every 0.1 s
    (each read succeeds, so a per-read timeout never fires); at most 600 bytes, then it stops."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(5)
        try:
            connection, _ = server.accept()
        except OSError:
            return
        with connection:
            connection.recv(65536)
            answer = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 560 + b"\r\n\r\n"
            for byte in answer:
                if stop.is_set():
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return  # cut off by the sender: what the test expects
                time.sleep(0.1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    stop.set()
    server.close()
    thread.join(5)


def test_a_receiver_trickling_its_answer_is_cut_off_at_the_attempts_deadline(settings, trickling_receiver):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.WEBHOOK_TIMEOUT_SECONDS = 1.0
    started = time.monotonic()

    result = send(trickling_receiver, "msg_1", "{}", ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], {})

    assert time.monotonic() - started < 3  # the whole answer would have taken a minute
    assert result.status_code is None and result.error == "timed out after 1 s"
