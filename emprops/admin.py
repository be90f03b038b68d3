"""EmProps notifications in the Django admin: with their attempts, redeliverable."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from emprops.models import EmpropsAttempt, EmpropsNotification
from outbox import redelivery


class AttemptInline(admin.TabularInline[EmpropsAttempt, EmpropsNotification]):
    model = EmpropsAttempt
    extra = 0
    can_delete = False
    readonly_fields = ("number", "started_at", "latency_ms", "status_code", "error", "succeeded")


@admin.register(EmpropsNotification)
class EmpropsNotificationAdmin(admin.ModelAdmin[EmpropsNotification]):
    list_display = ("id", "workflow", "outcome", "status", "attempt_count", "next_attempt_at", "delivered_at")
    list_filter = ("status", "outcome")
    search_fields = ("workflow__workflow_id",)
    readonly_fields = [f.name for f in EmpropsNotification._meta.fields]
    inlines = [AttemptInline]
    actions = ("redeliver",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made from the event log only

    @admin.action(description="Redeliver (a fresh retry schedule)")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[EmpropsNotification]) -> None:
        done = redelivery.redeliver_each(queryset)
        self.message_user(request, f"{done} queued again.", messages.SUCCESS)
