from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.models import QUOTAS, ApiKey, Customer, Tenant


class CustomerInline(admin.TabularInline[Customer, Tenant]):
    model = Customer
    extra = 0
    fields = ["customer_id", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin[Tenant]):
    list_display = ["name", *QUOTAS, "created_at"]
    search_fields = ["name"]
    fields = ["name", *QUOTAS]
    inlines = [CustomerInline]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin[Customer]):
    list_display = ["customer_id", "tenant", "created_at"]
    list_filter = ["tenant"]
    search_fields = ["customer_id"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
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
    fields = [
        "name",
        "tenant",
        "role",
        "is_active",
        "can_complete_delegated",
        "speaks_for_emprops",
        "expires_at",
        *readonly_fields,
    ]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created with `manage.py create_api_key` or POST /api/keys, which show the key once

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            api_key.revoke()
