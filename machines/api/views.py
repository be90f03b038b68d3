"""Joining the fleet (`POST /api/fleet/join`, authenticated by a join token, not an API key), and the
operator API over join tokens and worker credentials."""

from __future__ import annotations

import time
from datetime import timedelta

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from accounts.api.views import OperatorView
from accounts.auth import api_key_of
from core.api.pagination import PAGE_PARAMETERS, page_response, read_page
from core.api.schema import envelope, page
from core.errors import BrokerUnavailable
from core.redis import count_in_window
from machines import credentials
from machines.api.serializers import (
    IssuedCredentialSerializer,
    JoinRequestSerializer,
    JoinTokenCreateSerializer,
    JoinTokenSerializer,
    WorkerCredentialSerializer,
)
from machines.models import JoinToken, WorkerCredential
from wire import names

JOIN_TOKEN = envelope("JoinTokenEnvelope", join_token=JoinTokenSerializer())
CREDENTIAL = envelope("WorkerCredentialEnvelope", credential=WorkerCredentialSerializer())


JOIN_WINDOW_S = 60


class JoinRateThrottle(BaseThrottle):
    """FLEET_JOINS_PER_MINUTE per client address, counted in the broker's Redis (every API process
    together); past it a 429 with Retry-After."""

    def allow_request(self, request: Request, view: APIView) -> bool:
        try:
            joins = count_in_window(f"fleet_join:{self.get_ident(request)}", JOIN_WINDOW_S)
        except redis.RedisError as exc:  # joining needs the broker anyway
            raise BrokerUnavailable() from exc
        return joins <= settings.FLEET_JOINS_PER_MINUTE

    def wait(self) -> float:
        return JOIN_WINDOW_S - time.time() % JOIN_WINDOW_S


class JoinView(APIView):
    """A GPU worker exchanges a join token (`Authorization: Bearer <token>`) for its own credential."""

    throttle_classes = [JoinRateThrottle]

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=JoinRequestSerializer,
        parameters=[OpenApiParameter("Authorization", str, OpenApiParameter.HEADER, required=True)],
        responses={201: envelope("WorkerJoined", credential=IssuedCredentialSerializer())},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        body = JoinRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise credentials.JoinTokenRefused("send the join token as `Authorization: Bearer <token>`")
        try:
            credential, secret = credentials.join(token, **body.validated_data)
        except redis.RedisError as exc:
            raise BrokerUnavailable() from exc
        issued = {
            "worker_id": credential.worker_id,
            "pool": credential.pool,
            "customers": credential.customers,
            "broker_username": names.broker_username(credential.worker_id),
            "broker_password": secret,
        }
        return Response({"success": True, "credential": issued}, status=status.HTTP_201_CREATED)


class JoinTokenCollectionView(OperatorView):
    @extend_schema(
        operation_id="api_join_tokens_list",
        parameters=PAGE_PARAMETERS,
        responses=page("JoinTokenPage", "join_tokens", JoinTokenSerializer),
    )
    def get(self, request: Request) -> Response:
        tokens = JoinToken.objects.order_by("-id")
        return page_response("join_tokens", tokens, JoinTokenSerializer, read_page(request))

    @extend_schema(
        request=JoinTokenCreateSerializer,
        responses={
            201: envelope(
                "JoinTokenIssued",
                join_token=JoinTokenSerializer(),
                token=serializers.CharField(help_text="The token itself: shown this once, never again."),
            )
        },
    )
    def post(self, request: Request) -> Response:
        """A new join token; the answer's `token` is the only time it is shown."""
        body = JoinTokenCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            with transaction.atomic():
                token, raw = credentials.create_join_token(
                    data["name"],
                    data["pool"],
                    expires_in=timedelta(seconds=data["expires_in_seconds"]),
                    customers=data["customers"],
                    customers_tenant_id=data.get("customers_tenant_id", api_key_of(request).tenant_id),
                    max_workers=data["max_workers"],
                )
        except IntegrityError as exc:  # a concurrent create took the name
            raise serializers.ValidationError(
                {"name": ["a join token with this name already exists"]}
            ) from exc
        return Response(
            {"success": True, "join_token": JoinTokenSerializer(token).data, "token": raw},
            status=status.HTTP_201_CREATED,
        )


class JoinTokenRevokeView(OperatorView):
    @extend_schema(request=None, responses=JOIN_TOKEN)
    def post(self, request: Request, token_id: int) -> Response:
        """No worker can join with it from now on; those that joined keep their credentials."""
        token = get_object_or_404(JoinToken, pk=token_id)
        credentials.revoke_join_token(token)
        return Response({"success": True, "join_token": JoinTokenSerializer(token).data})


class WorkerCredentialCollectionView(OperatorView):
    @extend_schema(
        operation_id="api_worker_credentials_list",
        parameters=PAGE_PARAMETERS,
        responses=page("WorkerCredentialPage", "credentials", WorkerCredentialSerializer),
    )
    def get(self, request: Request) -> Response:
        rows = WorkerCredential.objects.order_by("worker_id")
        return page_response("credentials", rows, WorkerCredentialSerializer, read_page(request))


class WorkerCredentialRevokeView(OperatorView):
    @extend_schema(request=None, responses=CREDENTIAL)
    def post(self, request: Request, worker_id: str) -> Response:
        """Cut the worker off: its broker user is deleted (its connections close at once), it exits,
        and its attempts are recovered by the lease."""
        credential = get_object_or_404(WorkerCredential, pk=worker_id)
        with transaction.atomic():
            credentials.revoke(credential)
        return Response({"success": True, "credential": WorkerCredentialSerializer(credential).data})
