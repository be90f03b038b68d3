"""Signing secrets, generated in the Standard Webhooks format, and every other webhook secret (header
values): stored encrypted at rest with WEBHOOK_SECRETS_KEYS (MultiFernet: the first key encrypts,
any of them decrypts, `rotate` re-encrypts with the first)."""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64 random bytes


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key_bytes(secret: str) -> bytes:
    """The HMAC key a `whsec_…` secret stands for (what receivers' libraries derive too)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def _fernet() -> MultiFernet:
    return MultiFernet([_key(key) for key in settings.WEBHOOK_SECRETS_KEYS])


def _key(key: str) -> Fernet:
    derived = hashlib.sha256(("webhook-secrets:" + key).encode()).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def rotate(token: str) -> str:
    """The same secret, encrypted with the first key (it may have been with any of them)."""
    return _fernet().rotate(token.encode()).decode()


def encrypt_values(headers: dict[str, str]) -> dict[str, str]:
    return {name: encrypt(value) for name, value in headers.items()}


def decrypt_values(headers: dict[str, str]) -> dict[str, str]:
    return {name: decrypt(value) for name, value in headers.items()}
