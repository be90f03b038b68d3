"""`/api/emprops/collections`: collections created on EmProps and generated here."""

from __future__ import annotations

from uuid import UUID

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import api_key_of
from core.api.middleware import correlation_id
from core.api.schema import envelope, objects
from emprops import collections
from emprops.api.serializers import CollectionCreateSerializer, GenerationSerializer
from wire.json_types import JsonObject
from workflows.api.serializers import WorkflowSerializer, WorkflowSubmitSerializer
from workflows.creation import WorkflowRequest
from workflows.definition import resolve_dependencies
from workflows.models import Workflow

COLLECTION = envelope(
    "EmpropsCollection",
    collection=serializers.DictField(help_text="As EmProps has it."),
    workflows=objects(),
)


def _generation(name: str, definition: JsonObject, priority: int | None) -> WorkflowRequest:
    """The workflow that generates a collection, its steps checked as any workflow's (a 400 names
    the step and field at fault, under `steps`)."""
    body: JsonObject = {"name": name, "steps": definition.get("steps", [])}
    if priority is not None:
        body["priority"] = priority
    submission = WorkflowSubmitSerializer(data=body)
    submission.is_valid(raise_exception=True)
    generation = submission.to_workflow_request()
    # The dependency graph too, before EmProps hears of anything (create_workflow checks it again).
    resolve_dependencies(
        [step.name for step in generation.steps], [step.depends_on for step in generation.steps]
    )
    return generation


def _shown(workflow: Workflow) -> JsonObject:
    return dict(WorkflowSerializer(workflow).data)


class CollectionCollectionView(APIView):
    @extend_schema(request=CollectionCreateSerializer, responses={201: COLLECTION})
    def post(self, request: Request) -> Response:
        """Create a collection on EmProps and, with `generate`, start its first generation here."""
        body = CollectionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        generation = _generation(data["name"], data["data"], data.get("priority"))  # checked either way
        collection = {"name": data["name"], "description": data["description"], "data": data["data"]}
        created, workflow = collections.create(
            api_key_of(request), collection, generation if data["generate"] else None, correlation_id(request)
        )
        shown = [_shown(workflow)] if workflow else []
        return Response(
            {"success": True, "collection": created, "workflows": shown}, status=status.HTTP_201_CREATED
        )


class CollectionDetailView(APIView):
    @extend_schema(responses=COLLECTION)
    def get(self, request: Request, collection_id: UUID) -> Response:
        """The collection as EmProps has it, beside this key's workflows generating it (with progress)."""
        collection = collections.read(api_key_of(request), str(collection_id))
        workflows = [_shown(w) for w in collections.generations(api_key_of(request), str(collection_id))[:50]]
        return Response({"success": True, "collection": collection, "workflows": workflows})


class CollectionGenerationsView(APIView):
    @extend_schema(request=GenerationSerializer, responses={201: COLLECTION})
    def post(self, request: Request, collection_id: UUID) -> Response:
        """Start another generation of the collection, from its definition as EmProps has it now."""
        body = GenerationSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        collection = collections.read(api_key_of(request), str(collection_id))
        data = collection.get("data")
        definition: JsonObject = data if isinstance(data, dict) else {}
        generation = _generation(
            str(collection.get("name", "")), definition, body.validated_data.get("priority")
        )
        workflow = collections.start_generation(
            api_key_of(request), str(collection_id), generation, correlation_id(request)
        )
        return Response(
            {"success": True, "collection": collection, "workflows": [_shown(workflow)]},
            status=status.HTTP_201_CREATED,
        )
