"""API clients: keys, stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets

from django.db import models


class ApiKey(models.Model):
    """An API client. Only a SHA-256 of the key is stored; the key itself is shown once."""

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=16, help_text="First characters of the key, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    is_active = models.BooleanField(default=True)
    can_complete_delegated = models.BooleanField(
        default=False, help_text="May complete jobs of types no worker runs (POST /api/jobs/{id}/result)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "jobqueue_apikey"  # created by the jobqueue app; moved here with its table
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_key(raw_key: str) -> str:
        # Keys are 256-bit random tokens, so a fast hash is safe (no dictionary to attack).
        return hashlib.sha256(raw_key.encode()).hexdigest()

    @classmethod
    def issue(cls, name: str, *, can_complete_delegated: bool = False) -> tuple[ApiKey, str]:
        raw_key = f"jq_{secrets.token_urlsafe(32)}"
        api_key = cls.objects.create(
            name=name,
            prefix=raw_key[:10],
            key_hash=cls.hash_key(raw_key),
            can_complete_delegated=can_complete_delegated,
        )
        return api_key, raw_key

    @property
    def is_authenticated(self) -> bool:
        return True
