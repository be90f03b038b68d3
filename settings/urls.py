from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from drf_spectacular.utils import extend_schema, inline_serializer
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.errors import json_error_response
from core.api.schema import envelope
from core.health import system_health
from core.version import version_info
from live.views import MonitorView
from metrics.api.views import prometheus_metrics

HEALTH = envelope(
    "HealthReport",
    status=serializers.ChoiceField(choices=["ok", "degraded"]),
    ready=serializers.BooleanField(),
    checks=serializers.DictField(help_text="database, broker: {ok, latency_ms} or {ok, error, error_class}"),
)
READY = inline_serializer("Readiness", {"ready": serializers.BooleanField()})


@extend_schema(responses={200: HEALTH, 503: HEALTH})
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def health(request: Request) -> Response:
    report = system_health()
    return Response(
        {"success": report["ready"], "status": "ok" if report["ready"] else "degraded", **report},
        status=200 if report["ready"] else 503,
    )


@extend_schema(responses={200: READY, 503: READY})
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def ready(request: Request) -> Response:
    report = system_health()
    return Response({"ready": report["ready"]}, status=200 if report["ready"] else 503)


VERSION = inline_serializer(
    "Version",
    {
        "version": serializers.CharField(),
        "commit": serializers.CharField(),
        "api_schema_version": serializers.CharField(),
    },
)


@extend_schema(responses={200: VERSION})
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def version(request: Request) -> Response:
    return Response(version_info())


urlpatterns = [
    path("health", health, name="health"),
    path("version", version, name="version"),
    path("health/ready", ready, name="health-ready"),
    path("metrics", prometheus_metrics, name="metrics"),
    path("api/", include("accounts.api.urls")),
    path("api/", include("metrics.api.urls")),
    path("api/", include("jobqueue.api.urls")),
    path("api/", include("events.api.urls")),
    path("api/", include("workflows.api.urls")),
    path("api/", include("webhooks.api.urls")),
    path("api/", include("dispatch.api.urls")),
    path("api/", include("machines.api.urls")),
    path("api/", include("emprops.api.urls")),
    path(
        "api/schema",
        SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]),
        name="schema",
    ),
    path(
        "api/docs",
        SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="api-docs",
    ),
    path(
        "api/redoc",
        SpectacularRedocView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="api-redoc",
    ),
    path("admin/", admin.site.urls),
    path("monitor", MonitorView.as_view(), name="monitor"),
]


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return json_error_response(404, "not_found", "not found")


def handler500(request: HttpRequest) -> HttpResponse:
    return json_error_response(500, "internal_error", "internal server error")


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return json_error_response(400, "bad_request", "bad request")
