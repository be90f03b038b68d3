from django.contrib import admin

from accounts.models import ApiKey, Tenant


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "tenant",
        "role",
        "prefix",
        "is_active",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = ["role", "tenant", "is_active"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at", "revoked_at"]
    fields = ["name", "tenant", "role", "is_active", "can_complete_delegated", "expires_at", *readonly_fields]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False  # created with `manage.py create_api_key`, which shows the key once

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset) -> None:
        for api_key in queryset:
            api_key.revoke()
