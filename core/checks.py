"""Deployment checks (`manage.py check --deploy`): settings that must not reach production as they are.

Each has an id, so an operator who has judged one acceptable can silence exactly that one
(`SILENCED_SYSTEM_CHECKS`). They run with --deploy only: the development stack is meant to use these
defaults."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core import checks

from core.redis import redis_client


@checks.register(checks.Tags.security, deploy=True)
def check_secrets(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    if settings.SECRET_KEY == settings.DEVELOPMENT_SECRET_KEY:
        messages.append(
            checks.Error(
                "SECRET_KEY is the development key: sessions and admin logins can be forged.",
                hint="Set DJANGO_SECRET_KEY to a long random string.",
                id="core.E001",
            )
        )
    if settings.WEBHOOK_SECRETS_KEYS[0] in (settings.DEVELOPMENT_SECRET_KEY, settings.SECRET_KEY):
        messages.append(
            checks.Error(
                "Webhook secrets are encrypted with the development key or with SECRET_KEY (changing "
                "SECRET_KEY would then break every delivery).",
                hint="Set WEBHOOK_SECRETS_KEYS to a key of its own before creating endpoints.",
                id="core.E002",
            )
        )
    if not settings.FLOWER_BASIC_AUTH:
        messages.append(
            checks.Warning(
                "FLOWER_BASIC_AUTH is unset: Flower would show (and let anyone revoke) every task.",
                hint='Set FLOWER_BASIC_AUTH="user:password" for the Flower process.',
                id="core.W001",
            )
        )
    return messages


@checks.register(checks.Tags.security, deploy=True)
def check_services(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    if settings.USES_EMBEDDED_POSTGRES or settings.USES_EMBEDDED_REDIS:
        messages.append(
            checks.Warning(
                "DATABASE_URL or REDIS_URL is unset: the embedded development servers would be used.",
                hint="Point DATABASE_URL and REDIS_URL at managed, backed-up servers.",
                id="core.W002",
            )
        )
    if "*" in settings.ALLOWED_HOSTS:
        messages.append(
            checks.Warning(
                "ALLOWED_HOSTS accepts any host name.",
                hint="List the API's host names in DJANGO_ALLOWED_HOSTS.",
                id="core.W003",
            )
        )
    opened = [net for net in settings.WEBHOOK_ALLOWED_NETWORKS if _is_internal(net)]
    if opened:
        messages.append(
            checks.Warning(
                f"WEBHOOK_ALLOWED_NETWORKS lets webhooks reach internal networks: {', '.join(opened)}.",
                hint="Tenants' webhook URLs could then probe the control plane's own network (SSRF).",
                id="core.W004",
            )
        )
    return messages


def _is_internal(network: str) -> bool:
    try:
        parsed = ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False  # webhooks' own validation reports a malformed network
    return parsed.is_private or parsed.is_loopback or parsed.is_link_local


@checks.register(checks.Tags.security, deploy=True)
def check_exposure(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """What travels or answers unprotected: the scrape endpoint, the broker's traffic, EmProps calls."""
    messages: list[checks.CheckMessage] = []
    if not settings.METRICS_TOKEN:
        messages.append(
            checks.Warning(
                "METRICS_TOKEN is unset: /metrics answers every client in METRICS_ALLOWED_NETWORKS "
                "without a credential (tenants' job types and error codes are in its labels).",
                hint="Set METRICS_TOKEN and give it to Prometheus as a bearer token.",
                id="core.W005",
            )
        )
    broker = urlsplit(settings.REDIS_URL)
    if not settings.USES_EMBEDDED_REDIS and broker.scheme == "redis" and not _is_loopback(broker.hostname):
        messages.append(
            checks.Warning(
                "REDIS_URL is not TLS: job payloads, results and the workers' broker passwords cross "
                "the network in clear.",
                hint="Use a rediss:// URL (and TLS on the broker) wherever it is not on this host.",
                id="core.W006",
            )
        )
    emprops = urlsplit(settings.EMPROPS_API_URL)
    if settings.EMPROPS_API_URL and emprops.scheme != "https" and not _is_loopback(emprops.hostname):
        messages.append(
            checks.Error(
                f"EMPROPS_API_URL is {emprops.scheme}://: the install's EmProps key would cross the "
                "network in clear.",
                hint="Use EmProps' https:// URL.",
                id="core.E003",
            )
        )
    return messages


@checks.register(checks.Tags.security, deploy=True)
def check_broker_bounds(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The broker's memory bound (docs/security.md: a flooding host must not fill it until it dies)."""
    try:
        config: Any = redis_client().config_get("maxmemory*")
    except redis.ResponseError:
        return [
            checks.Info(
                "The broker refuses CONFIG: check its maxmemory and maxmemory-policy yourself.",
                hint="maxmemory set, maxmemory-policy noeviction (docs/operations.md).",
                id="core.I001",
            )
        ]
    except redis.RedisError as exc:
        return [checks.Warning(f"Could not reach the broker to check its bounds: {exc}", id="core.W007")]
    if int(config.get("maxmemory") or 0) == 0 or config.get("maxmemory-policy") != "noeviction":
        return [
            checks.Warning(
                f"The broker runs with maxmemory {config.get('maxmemory')} and policy "
                f"{config.get('maxmemory-policy')}: unbounded, or evicting queued work.",
                hint="Set maxmemory (compose: REDIS_MAXMEMORY) and maxmemory-policy noeviction.",
                id="core.W008",
            )
        ]
    return []


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
