"""EmProps' notifications (operators: list, read, redeliver, counts) and the miniapp's attestation."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.views import OperatorView
from accounts.auth import api_key_of
from core.api.pagination import PAGE_PARAMETERS, page_response, read_page
from core.api.schema import envelope, page
from emprops import attestations, notifications
from emprops.api.serializers import (
    CountsSerializer,
    NotificationDetailSerializer,
    NotificationQuerySerializer,
    NotificationSerializer,
    UserNotifiedSerializer,
)
from emprops.models import EmpropsNotification

NOTIFICATION = envelope("EmpropsNotificationEnvelope", notification=NotificationDetailSerializer())


class NotificationCollectionView(OperatorView):
    @extend_schema(
        operation_id="api_emprops_notifications_list",
        parameters=[NotificationQuerySerializer, *PAGE_PARAMETERS],
        responses=page("EmpropsNotificationPage", "notifications", NotificationSerializer),
    )
    def get(self, request: Request) -> Response:
        query = NotificationQuerySerializer(
            data={k: v for k, v in request.query_params.items() if k == "status"}
        )
        query.is_valid(raise_exception=True)
        rows = EmpropsNotification.objects.select_related("workflow").order_by("-id")
        if "status" in query.validated_data:
            rows = rows.filter(status=query.validated_data["status"])
        return page_response("notifications", rows, NotificationSerializer, read_page(request))


class NotificationDetailView(OperatorView):
    @extend_schema(responses=NOTIFICATION)
    def get(self, request: Request, notification_id: int) -> Response:
        notification = get_object_or_404(EmpropsNotification, pk=notification_id)
        return Response({"success": True, "notification": NotificationDetailSerializer(notification).data})


class NotificationRedeliverView(OperatorView):
    @extend_schema(request=None, responses=NOTIFICATION)
    def post(self, request: Request, notification_id: int) -> Response:
        """Send a notified or dead-lettered notification again, with a fresh retry schedule."""
        get_object_or_404(EmpropsNotification, pk=notification_id)
        notification = notifications.redeliver(notification_id)
        return Response({"success": True, "notification": NotificationDetailSerializer(notification).data})


class NotificationCountsView(OperatorView):
    @extend_schema(responses=envelope("EmpropsNotificationCounts", counts=CountsSerializer()))
    def get(self, request: Request) -> Response:
        return Response({"success": True, "counts": notifications.counts()})


class UserNotifiedView(APIView):
    @extend_schema(
        request=UserNotifiedSerializer,
        responses={
            201: envelope(
                "UserNotified", workflow_id=serializers.CharField(), notified_at=serializers.DateTimeField()
            )
        },
    )
    def post(self, request: Request) -> Response:
        """The miniapp's attestation that a user was told of a workflow's result."""
        body = UserNotifiedSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        attested = attestations.user_notified(api_key_of(request), **body.validated_data)
        attested.refresh_from_db()
        return Response(
            {
                "success": True,
                "workflow_id": attested.workflow.workflow_id,
                "notified_at": attested.notified_at,
            },
            status=status.HTTP_201_CREATED,
        )
