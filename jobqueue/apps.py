from django.apps import AppConfig


class JobqueueConfig(AppConfig):
    name = "jobqueue"
    verbose_name = "Jobs"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from accounts.models import Tenant
        from jobqueue import lifecycle, schedules  # noqa: F401 — schedules connects its signal receiver
        from jobqueue.dependencies import DependencyListener
        from jobqueue.running_counts import recount_on_save

        lifecycle.register(DependencyListener())
        post_save.connect(recount_on_save, sender=Tenant, dispatch_uid="jobqueue.recount_tenant")
