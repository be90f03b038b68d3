"""Who may start a workflow whose ending is told to an outside system (its `source`). Today that is
EmProps: the control plane then calls EmProps with the install's own key, so only keys allowed to
speak for EmProps (`ApiKey.speaks_for_emprops`) may name it."""

from __future__ import annotations

from accounts.models import ApiKey
from core.errors import DomainError

EMPROPS = "emprops"


class SourceNotAllowed(DomainError):
    """This key may not start workflows for that source."""

    code = "emprops_not_allowed"
    http_status = 403


def check_source(source: str, api_key: ApiKey | None, field: str = "source") -> str:
    """`source`, if `api_key` may name it; SourceNotAllowed otherwise."""
    if source == EMPROPS and not (api_key is not None and api_key.speaks_for_emprops):
        raise SourceNotAllowed(
            "only keys allowed to speak for EmProps may start workflows it is told of", field=field
        )
    return source
