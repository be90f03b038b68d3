"""Endpoints (enable, disable) and deliveries with their attempts (redeliver) in the admin."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from outbox import redelivery
from webhooks.endpoints import WebhookError, validate_target
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.outcome import disable_endpoint


class WebhookEndpointForm(forms.ModelForm[WebhookEndpoint]):
    """An endpoint edited in the admin is held to the API's SSRF check."""

    url = forms.URLField(max_length=2000, assume_scheme="https")

    class Meta:
        model = WebhookEndpoint
        exclude = ["headers"]  # values are stored encrypted; the API sets them

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        try:
            validate_target(url)
        except WebhookError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin[WebhookEndpoint]):
    form = WebhookEndpointForm
    list_display = (
        "url",
        "tenant",
        "owner",
        "enabled",
        "event_types",
        "failing_since",
        "last_success_at",
        "created_at",
    )
    list_filter = ("enabled", "tenant")
    search_fields = ("url", "description")
    readonly_fields = (
        "failing_since",
        "last_success_at",
        "last_failure_at",
        "secret_rotated_at",
        "created_at",
    )
    exclude = ("secret_encrypted", "previous_secret_encrypted", "previous_secret_expires_at")
    actions = ("enable", "disable")

    @admin.action(description="Enable (and forget the failure streak)")
    def enable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        updated = queryset.update(enabled=True, disabled_reason="", failing_since=None)
        self.message_user(request, f"{updated} endpoint(s) enabled.", messages.SUCCESS)

    @admin.action(description="Disable")
    def disable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset.filter(enabled=True):
            disable_endpoint(endpoint, f"disabled by {request.user} in the admin")
        self.message_user(request, "Endpoint(s) disabled.", messages.SUCCESS)


class WebhookAttemptInline(admin.TabularInline[WebhookAttempt, WebhookDelivery]):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = (
        "number",
        "started_at",
        "status_code",
        "latency_ms",
        "error",
        "response_excerpt",
        "next_attempt_at",
    )
    readonly_fields = fields


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin[WebhookDelivery]):
    list_display = (
        "id",
        "event_type",
        "url",
        "tenant",
        "status",
        "dead_letter_reason",
        "attempt_count",
        "created_at",
    )
    list_filter = ("status", "dead_letter_reason", "event_type", "tenant")
    search_fields = ("url", "message_id", "job_id", "workflow_id")
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    inlines = [WebhookAttemptInline]
    actions = ("redeliver",)

    @admin.action(description="Redeliver (same webhook-id, a fresh retry schedule)")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        restarted = redelivery.redeliver_each(queryset)
        self.message_user(request, f"{restarted} delivery(ies) queued again.", messages.SUCCESS)
