from django.contrib import admin

from machines.models import Worker


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ["id", "machine_id", "pool", "status", "gpu_memory_gb", "slots", "last_seen_at"]
    list_filter = ["status", "pool"]
    search_fields = ["id", "machine_id", "hostname"]
    readonly_fields = [f.name for f in Worker._meta.fields]
