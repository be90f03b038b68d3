"""The SSRF guard judges an IPv6 address by the IPv4 address it leads to as well: an internal host
reached through a NAT64 prefix, 6to4 or an IPv4-mapped address is refused like the host itself."""

from __future__ import annotations

import pytest

from webhooks.ssrf import BlockedTarget, check_address


@pytest.fixture(autouse=True)
def no_allowed_networks(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a00:1",  # NAT64 (well-known prefix) of 10.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b:1::a9fe:a9fe",  # NAT64 (local-use prefix) of 169.254.169.254, the metadata service
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "::ffff:192.168.1.1",  # IPv4-mapped
        "10.0.0.1",
        "::1",
    ],
)
def test_an_internal_address_in_any_ipv6_form_is_refused(address):
    with pytest.raises(BlockedTarget) as refused:
        check_address(address)
    assert refused.value.code == "blocked_address"


@pytest.mark.parametrize("address", ["8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "2606:4700::1111"])
def test_a_public_address_in_any_form_is_allowed(address):
    check_address(address)


def test_a_name_whose_lookup_hangs_does_not_resolve_after_the_dns_timeout(settings, monkeypatch):
    import socket
    import threading

    from webhooks import dns

    settings.WEBHOOK_DNS_TIMEOUT_SECONDS = 0.2
    released = threading.Event()

    def hanging_lookup(*args, **kwargs):
        released.wait(5)
        raise socket.gaierror("released")

    monkeypatch.setattr(dns.socket, "getaddrinfo", hanging_lookup)
    try:
        with pytest.raises(OSError, match=r"no DNS answer within 0\.2 s"):
            dns.resolve("slow.example", 443)
    finally:
        released.set()
