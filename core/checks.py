"""Deployment checks (`manage.py check --deploy`): settings that must not reach production as they are.

Each has an id, so an operator who has judged one acceptable can silence exactly that one
(`SILENCED_SYSTEM_CHECKS`). They run with --deploy only: the development stack is meant to use these
defaults."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.core import checks


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
