"""Webhook API views: /api/webhooks (endpoints, secrets, tests, stats, deliveries, redelivery).

Every endpoint and delivery belongs to a tenant; a key sees and changes only its tenant's (another
tenant's id is a 404)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar
from uuid import UUID

from django.db.models import Model, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import api_key_of
from accounts.scoping import owned
from core.api.pagination import PAGE_PARAMETERS, page_response, read_page
from core.api.schema import envelope, page
from webhooks import endpoints
from webhooks.api.serializers import (
    BulkRedeliverSerializer,
    DeliveryDetailSerializer,
    DeliveryQuerySerializer,
    DeliverySerializer,
    EndpointSerializer,
    EndpointWriteSerializer,
    RotateSecretSerializer,
)
from webhooks.models import WebhookDelivery, WebhookEndpoint

M = TypeVar("M", bound=Model)
WEBHOOK = envelope("WebhookEnvelope", webhook=EndpointSerializer())
SECRET_ROTATED = envelope(
    "SecretRotated",
    secret=serializers.CharField(help_text="The new secret: shown this once."),
    previous_secret_valid_until=serializers.DateTimeField(allow_null=True),
)
DELIVERY_PAGE = page("DeliveryPage", "deliveries", DeliverySerializer)


def _own_endpoint(request: Request, endpoint_id: UUID) -> WebhookEndpoint:
    return get_object_or_404(_own(WebhookEndpoint.objects.all(), request), pk=endpoint_id)


def _own(queryset: QuerySet[M], request: Request) -> QuerySet[M]:
    return owned(queryset, api_key_of(request))


def _rotated(request: Request, rotate: Callable[[timedelta], tuple[str, datetime | None]]) -> Response:
    """Rotate with the requested overlap; the answer shows the new secret, this once."""
    body = RotateSecretSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    secret, previous_valid_until = rotate(timedelta(seconds=body.validated_data["overlap_seconds"]))
    return Response({"success": True, "secret": secret, "previous_secret_valid_until": previous_valid_until})


def _deliveries(request: Request, queryset: QuerySet[WebhookDelivery]) -> Response:
    query = DeliveryQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    if "status" in query.validated_data:
        queryset = queryset.filter(status=query.validated_data["status"])
    return page_response("deliveries", queryset.order_by("-id"), DeliverySerializer, read_page(request))


class EndpointCollectionView(APIView):
    @extend_schema(
        operation_id="api_webhooks_list",
        parameters=PAGE_PARAMETERS,
        responses=page("WebhookPage", "webhooks", EndpointSerializer),
    )
    def get(self, request: Request) -> Response:
        queryset = _own(WebhookEndpoint.objects.all(), request).order_by("created_at")
        return page_response("webhooks", queryset, EndpointSerializer, read_page(request))

    @extend_schema(
        request=EndpointWriteSerializer,
        responses={
            201: envelope(
                "WebhookCreated",
                webhook=EndpointSerializer(),
                secret=serializers.CharField(help_text="Its signing secret: shown this once."),
            )
        },
    )
    def post(self, request: Request) -> Response:
        body = EndpointWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint, secret = endpoints.create_endpoint(api_key_of(request), body.validated_data)
        return Response(
            {"success": True, "webhook": EndpointSerializer(endpoint).data, "secret": secret},
            status=status.HTTP_201_CREATED,
        )


class EndpointDetailView(APIView):
    @extend_schema(responses=WEBHOOK)
    def get(self, request: Request, endpoint_id: UUID) -> Response:
        return Response(
            {"success": True, "webhook": EndpointSerializer(_own_endpoint(request, endpoint_id)).data}
        )

    @extend_schema(request=EndpointWriteSerializer, responses=WEBHOOK)
    def patch(self, request: Request, endpoint_id: UUID) -> Response:
        endpoint = _own_endpoint(request, endpoint_id)
        body = EndpointWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        endpoint = endpoints.update_endpoint(endpoint, body.validated_data)
        return Response({"success": True, "webhook": EndpointSerializer(endpoint).data})

    @extend_schema(responses={204: None})
    def delete(self, request: Request, endpoint_id: UUID) -> Response:
        _own_endpoint(request, endpoint_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointRotateSecretView(APIView):
    @extend_schema(request=RotateSecretSerializer, responses=SECRET_ROTATED)
    def post(self, request: Request, endpoint_id: UUID) -> Response:
        endpoint = _own_endpoint(request, endpoint_id)
        return _rotated(request, lambda overlap: endpoints.rotate_secret(endpoint.pk, overlap))


class DefaultSecretRotateView(APIView):
    @extend_schema(request=RotateSecretSerializer, responses=SECRET_ROTATED)
    def post(self, request: Request) -> Response:
        """The secret signing this tenant's per-job and per-workflow `webhook_url` messages."""
        return _rotated(
            request, lambda overlap: endpoints.rotate_default_secret(api_key_of(request).tenant_id, overlap)
        )


class EndpointTestView(APIView):
    @extend_schema(
        request=None,
        responses={
            202: envelope(
                "WebhookTestQueued", delivery_id=serializers.IntegerField(), delivery=DeliverySerializer()
            )
        },
    )
    def post(self, request: Request, endpoint_id: UUID) -> Response:
        """Queue a `webhook.test` message; read how it went at `/api/webhooks/deliveries/{delivery_id}`."""
        test = endpoints.queue_test(_own_endpoint(request, endpoint_id))
        return Response(
            {"success": True, "delivery_id": test.pk, "delivery": DeliverySerializer(test).data},
            status=status.HTTP_202_ACCEPTED,
        )


class EndpointStatsView(APIView):
    @extend_schema(responses=envelope("WebhookStats", stats=serializers.DictField()))
    def get(self, request: Request, endpoint_id: UUID) -> Response:
        stats = endpoints.endpoint_stats(_own_endpoint(request, endpoint_id))
        return Response({"success": True, "stats": stats})


class EndpointDeliveriesView(APIView):
    @extend_schema(
        operation_id="api_webhooks_deliveries_list",
        parameters=[DeliveryQuerySerializer, *PAGE_PARAMETERS],
        responses=DELIVERY_PAGE,
    )
    def get(self, request: Request, endpoint_id: UUID) -> Response:
        return _deliveries(request, _own_endpoint(request, endpoint_id).deliveries.all())


class DeliveryCollectionView(APIView):
    @extend_schema(
        operation_id="webhook_deliveries_list_all",
        parameters=[DeliveryQuerySerializer, *PAGE_PARAMETERS],
        responses=DELIVERY_PAGE,
    )
    def get(self, request: Request) -> Response:
        """Every delivery of this tenant's: its endpoints' and its jobs' and workflows' own URLs."""
        return _deliveries(request, _own(WebhookDelivery.objects.all(), request))


class DeliveryDetailView(APIView):
    @extend_schema(responses=envelope("DeliveryEnvelope", delivery=DeliveryDetailSerializer()))
    def get(self, request: Request, delivery_id: int) -> Response:
        delivery = get_object_or_404(
            _own(WebhookDelivery.objects.prefetch_related("attempts"), request), pk=delivery_id
        )
        return Response({"success": True, "delivery": DeliveryDetailSerializer(delivery).data})


class DeliveryRedeliverView(APIView):
    @extend_schema(request=None, responses=envelope("DeliveryRedelivered", delivery=DeliverySerializer()))
    def post(self, request: Request, delivery_id: int) -> Response:
        get_object_or_404(_own(WebhookDelivery.objects.all(), request), pk=delivery_id)
        delivery = endpoints.redeliver(delivery_id, api_key_of(request).tenant_id)
        return Response({"success": True, "delivery": DeliverySerializer(delivery).data})


class BulkRedeliverView(APIView):
    @extend_schema(
        operation_id="webhook_deliveries_redeliver_bulk",
        request=BulkRedeliverSerializer,
        responses=envelope(
            "DeliveriesRedelivered",
            matched=serializers.IntegerField(),
            redelivered=serializers.IntegerField(),
            remaining=serializers.IntegerField(),
        ),
    )
    def post(self, request: Request) -> Response:
        """Everything that failed (was dead-lettered) since a time, sent again."""
        body = BulkRedeliverSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint_id = body.validated_data.get("endpoint_id")
        if endpoint_id is not None:
            _own_endpoint(request, endpoint_id)
        outcome = endpoints.redeliver_failed(
            api_key_of(request).tenant_id,
            body.validated_data["since"],
            endpoint_id,
            body.validated_data["limit"],
        )
        return Response(
            {
                "success": True,
                "matched": outcome.matched,
                "redelivered": outcome.redelivered,
                "remaining": outcome.matched - outcome.redelivered,
            }
        )
