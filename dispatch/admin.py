from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from dispatch import worker_reports
from machines.models import Machine, Worker


@admin.register(Machine)
class MachineAdmin(admin.ModelAdmin[Machine]):
    list_display = ("id", "hostname", "pool", "status", "draining", "last_seen_at", "registered_at")
    list_filter = ("pool", "status", "draining")
    search_fields = ("id", "hostname")
    readonly_fields = ("gpus", "software", "registered_at", "last_seen_at", "status")
    actions = ("drain", "resume")

    @admin.action(description="Drain (no new work; running jobs finish)")
    def drain(self, request: HttpRequest, queryset: QuerySet[Machine]) -> None:
        for machine_id in queryset.values_list("id", flat=True):
            worker_reports.set_draining(machine_id, True)
        self.message_user(request, "Draining.", messages.SUCCESS)

    @admin.action(description="Resume (take work again)")
    def resume(self, request: HttpRequest, queryset: QuerySet[Machine]) -> None:
        for machine_id in queryset.values_list("id", flat=True):
            worker_reports.set_draining(machine_id, False)
        self.message_user(request, "Resumed.", messages.SUCCESS)


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin[Worker]):
    list_display = (
        "id",
        "machine_id",
        "pool",
        "status",
        "draining",
        "engine_healthy",
        "gpu_memory_gb",
        "last_seen_at",
    )
    list_filter = ("pool", "status", "draining", "engine_healthy")
    search_fields = ("id", "machine_id", "hostname")
    readonly_fields = [f.name for f in Worker._meta.fields if f.name != "draining"]
