"""What the apps' admin actions share."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from django.contrib import messages
from django.db.models import Model
from django.http import HttpRequest

from core.errors import DomainError

T = TypeVar("T", bound=Model)


def act_on_each(request: HttpRequest, objects: Iterable[T], act: Callable[[T], object], done: str) -> None:
    """Run an admin action on each selected object: a domain refusal is a warning naming that object,
    the rest go on; `done` (with `{count}`) reports how many it was applied to."""
    count = 0
    for obj in objects:
        try:
            act(obj)
            count += 1
        except DomainError as exc:
            messages.warning(request, f"{obj.pk}: {exc.message}")
    messages.info(request, done.format(count=count))
