from django.contrib import admin

from accounts.models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "is_active", "created_at", "last_used_at"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]
    fields = ["name", "is_active", *readonly_fields]

    def has_add_permission(self, request) -> bool:
        return False  # created with `manage.py create_api_key`, which shows the key once
