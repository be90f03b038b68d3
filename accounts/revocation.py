"""A key cut off where it is already connected: each WebSocket joins its key's group, and a key that
is revoked, deactivated or deleted is announced there once the change commits, so its open sockets
close within moments. Expiry needs no announcement: each socket times it itself."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import ApiKey

log = logging.getLogger(__name__)

#: The message a key's sockets receive (`LiveConsumer.api_key_closed`).
KEY_CLOSED_MESSAGE = {"type": "api_key.closed"}


def key_group(key_id: int) -> str:
    return f"api-key.{key_id}"


def announce_closed(key_id: int) -> None:
    """Tell the key's open sockets to close. Best effort: the key is refused on every new request
    and connection whatever happens here, so a broker outage only delays the open sockets' end."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(key_group(key_id), KEY_CLOSED_MESSAGE)
    except Exception:  # the revocation itself has committed; say why the sockets stay open
        log.warning(
            "could not announce that API key %s was cut off to its open sockets", key_id, exc_info=True
        )


@receiver(post_save, sender=ApiKey)
def _key_saved(sender: Any, instance: ApiKey, **kwargs: Any) -> None:
    if not instance.is_usable():
        key_id = instance.pk
        transaction.on_commit(lambda: announce_closed(key_id))


@receiver(post_delete, sender=ApiKey)
def _key_deleted(sender: Any, instance: ApiKey, **kwargs: Any) -> None:
    key_id = instance.pk
    transaction.on_commit(lambda: announce_closed(key_id))
