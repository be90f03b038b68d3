"""Join tokens and worker credentials in the Django admin (machines and workers: `dispatch/admin.py`).
A join token made here is shown once, in the message after saving."""

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from machines import credentials
from machines.models import JoinToken, WorkerCredential


@admin.register(JoinToken)
class JoinTokenAdmin(admin.ModelAdmin[JoinToken]):
    list_display = ["name", "prefix", "pool", "joined", "max_workers", "expires_at", "revoked_at"]
    list_filter = ["pool"]
    search_fields = ["name", "prefix"]
    fields = ["name", "pool", "customers", "max_workers", "expires_at", "prefix", "joined", "revoked_at"]
    actions = ["revoke"]

    def get_readonly_fields(self, request: HttpRequest, obj: JoinToken | None = None) -> list[str]:
        made = ["prefix", "joined", "revoked_at"]
        return self.fields if obj is not None else made  # type: ignore[return-value]

    def save_model(self, request: HttpRequest, obj: JoinToken, form: Any, change: bool) -> None:
        if change:
            return
        raw = credentials.set_new_secret(obj)
        super().save_model(request, obj, form, change)
        self.message_user(
            request, f"Join token for pool {obj.pool} (shown this once, copy it now): {raw}", messages.WARNING
        )

    @admin.action(description="Revoke the selected join tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[JoinToken]) -> None:
        for token in queryset:
            credentials.revoke_join_token(token)
        self.message_user(request, "Revoked: no worker can join with them any more.", messages.SUCCESS)


@admin.register(WorkerCredential)
class WorkerCredentialAdmin(admin.ModelAdmin[WorkerCredential]):
    list_display = ["worker_id", "pool", "machine_id", "join_token", "created_at", "revoked_at"]
    list_filter = ["pool"]
    search_fields = ["worker_id", "machine_id"]
    fields = ("worker_id", "pool", "customers", "machine_id", "join_token", "created_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made by joining, or `manage.py create_worker_credential`, which show the secret once

    @admin.action(description="Revoke (cut the workers off now)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[WorkerCredential]) -> None:
        with transaction.atomic():
            for credential in queryset:
                credentials.revoke(credential)
        self.message_user(request, "Revoked: their broker users are deleted.", messages.SUCCESS)
