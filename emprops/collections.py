"""EmProps collections, as this queue starts their generations: a collection is created on (or read
from) EmProps, and each generation is a workflow of ours with `source = emprops` and the collection's
id in its metadata, whose ending EmProps is then told of (`emprops/notifications.py`).

The collection's definition (`data.steps`, the steps of a workflow) is checked by the caller, as any
workflow's, before anything is sent to EmProps. EmProps' own answers become API errors here: an
outage is a 503, a refusal keeps EmProps' status with the code `emprops_refused`, a collection it does
not know is a 404. Only keys allowed to speak for EmProps use collections (a 403 otherwise), and a
collection belongs to the tenant whose key created it here (`EmpropsCollection`): another tenant's
is a 404, asked of nobody."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from accounts.models import ApiKey
from accounts.scoping import owned
from core.errors import DomainError, NotFound
from emprops.client import EmpropsClient, EmpropsError, EmpropsNotConfigured, EmpropsNotFound, path
from emprops.models import EmpropsCollection
from jobqueue.quotas import admit_jobs
from wire.json_types import JsonObject
from workflows.creation import WorkflowRequest, create_workflow
from workflows.models import Workflow
from workflows.sources import EMPROPS, check_source

T = TypeVar("T")


class EmpropsUnavailable(DomainError):
    """EmProps did not answer (or is not configured: EMPROPS_API_URL); nothing was created. Retry."""

    code = "emprops_unavailable"
    http_status = 503
    retry_after_seconds = 5


class EmpropsRefused(DomainError):
    """EmProps refused the request; its status is passed on."""

    code = "emprops_refused"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.http_status = status if 400 <= status < 500 else 503


class CollectionNotFound(NotFound):
    """EmProps has no such collection."""

    code = "collection_not_found"


def create(
    api_key: ApiKey, collection: JsonObject, generation: WorkflowRequest | None, correlation_id: str
) -> tuple[JsonObject, Workflow | None]:
    """The collection made on EmProps, and (when asked) its first generation started here."""
    check_source(EMPROPS, api_key)
    made = _asking_emprops(lambda client: client.post(path("collections"), collection)) or {}
    created = made.get("data", made) if isinstance(made, dict) else {}
    collection_id = str(created.get("id") or "")
    if not collection_id:
        raise EmpropsUnavailable("EmProps created the collection but sent back no id")
    try:
        EmpropsCollection.objects.get_or_create(
            collection_id=collection_id, defaults={"tenant": api_key.tenant}
        )
    except (ValueError, ValidationError) as exc:  # the id is a UUID in EmProps' API
        raise EmpropsUnavailable(
            f"EmProps sent back a collection id that is not a UUID: {collection_id!r}"
        ) from exc
    workflow = start_generation(api_key, collection_id, generation, correlation_id) if generation else None
    return created, workflow


def read(api_key: ApiKey, collection_id: str) -> JsonObject:
    """The collection as EmProps has it, if it is the key's tenant's."""
    _check_owned(api_key, collection_id)
    answer = _asking_emprops(lambda client: client.get(path("collections", collection_id))) or {}
    return answer.get("data", answer) if isinstance(answer, dict) else {}


def start_generation(
    api_key: ApiKey, collection_id: str, generation: WorkflowRequest, correlation_id: str
) -> Workflow:
    _check_owned(api_key, collection_id)
    generation.source = EMPROPS
    generation.metadata = {**generation.metadata, "collection_id": collection_id}
    admit_jobs(api_key.tenant, len(generation.steps))
    workflow, _ = create_workflow(generation, api_key, correlation_id)
    return workflow


def generations(api_key: ApiKey, collection_id: str) -> QuerySet[Workflow]:
    """The key's tenant's workflows generating this collection, newest first."""
    return (
        owned(Workflow.objects.filter(source=EMPROPS), api_key)
        .filter(metadata__collection_id=collection_id)
        .order_by("-created_at")
    )


def _check_owned(api_key: ApiKey, collection_id: str) -> None:
    check_source(EMPROPS, api_key)
    if not EmpropsCollection.objects.filter(
        collection_id=collection_id, tenant_id=api_key.tenant_id
    ).exists():
        raise CollectionNotFound(f"no such collection: {collection_id}")


def _asking_emprops(call: Callable[[EmpropsClient], T]) -> T:
    try:
        return call(EmpropsClient())
    except EmpropsNotFound as exc:
        raise CollectionNotFound(str(exc)) from exc
    except EmpropsNotConfigured as exc:
        raise EmpropsUnavailable("EmProps is not configured here (EMPROPS_API_URL)") from exc
    except EmpropsError as exc:
        if exc.transient or exc.status in (401, 403):  # ours to fix (EMPROPS_API_KEY), not the caller's
            raise EmpropsUnavailable(str(exc)) from exc
        raise EmpropsRefused(str(exc), exc.status or 503) from exc
