"""`manage.py rotate_webhook_secrets`: re-encrypt every stored webhook secret (endpoints' signing
secrets, their header values, tenants' default secrets) with the first of WEBHOOK_SECRETS_KEYS, so an
old key can then be dropped from the list."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from tqdm import tqdm

from webhooks import secrets
from webhooks.models import DefaultSigningSecret, SigningSecrets, WebhookEndpoint


class Command(BaseCommand):
    help = "Re-encrypt every stored webhook secret with the first key of WEBHOOK_SECRETS_KEYS."

    def handle(self, *args: Any, **options: Any) -> None:
        rotated = 0
        for model in (WebhookEndpoint, DefaultSigningSecret):
            ids = list(model.objects.values_list("pk", flat=True))
            for pk in tqdm(ids, desc=model._meta.verbose_name_plural, disable=not ids):
                with transaction.atomic():
                    holder = model.objects.select_for_update().get(pk=pk)
                    _rotate(holder)
                    holder.save()
                rotated += 1
        self.stdout.write(f"re-encrypted the secrets of {rotated} endpoint(s) and default secret(s)")


def _rotate(holder: SigningSecrets) -> None:
    holder.secret_encrypted = secrets.rotate(holder.secret_encrypted)
    if holder.previous_secret_encrypted:
        holder.previous_secret_encrypted = secrets.rotate(holder.previous_secret_encrypted)
    if isinstance(holder, WebhookEndpoint):
        holder.headers = {name: secrets.rotate(value) for name, value in holder.headers.items()}
