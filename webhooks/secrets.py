"""Signing secrets: generated in the Standard Webhooks format, stored encrypted at rest."""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet
from django.conf import settings

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64 random bytes


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key_bytes(secret: str) -> bytes:
    """The HMAC key a `whsec_…` secret stands for (what receivers' libraries derive too)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def _fernet() -> Fernet:
    key = hashlib.sha256(("webhook-secrets:" + settings.WEBHOOK_SECRETS_KEY).encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()
