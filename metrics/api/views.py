"""`/metrics` for Prometheus, and the dashboard API for operators (`GET /api/jobs/metrics`)."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.views import OperatorView
from core.api.errors import json_error_response
from core.api.schema import envelope
from metrics import readings
from metrics.collector import ControlPlaneCollector

_registry = CollectorRegistry(auto_describe=False)
_registry.register(ControlPlaneCollector())


def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus exposition. With METRICS_TOKEN set, only a scraper presenting it as a bearer
    token; without, only clients in METRICS_ALLOWED_NETWORKS (loopback by default). The public front
    never routes here (docker/nginx)."""
    if request.method != "GET":
        return json_error_response(405, "method_not_allowed", "only GET")
    if settings.METRICS_TOKEN:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), settings.METRICS_TOKEN.encode()):
            return json_error_response(401, "not_authenticated", "a bearer token is required for /metrics")
    elif not _internal(request.META.get("REMOTE_ADDR", "")):
        return json_error_response(403, "permission_denied", "/metrics answers internal addresses only")
    return HttpResponse(generate_latest(_registry), content_type=CONTENT_TYPE_LATEST)


def _internal(address: str) -> bool:
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(client in ipaddress.ip_network(net) for net in settings.METRICS_ALLOWED_NETWORKS)


DASHBOARD = envelope(
    "JobMetrics",
    queue=serializers.DictField(help_text="Jobs by status (dlq: open dead letters), and by pool."),
    workers=serializers.DictField(help_text="alive, by_status, alive_by_pool"),
    throughput=serializers.DictField(
        help_text="last_hour and last_24h: submitted, completed, failed, cancelled, completed_per_minute, "
        "error_rates by job type"
    ),
    generated_at=serializers.DateTimeField(),
)


class JobMetricsView(OperatorView):
    @extend_schema(operation_id="jobs_metrics", responses=DASHBOARD)
    def get(self, request: Request) -> Response:
        return Response({"success": True, **readings.dashboard()})
