from django.apps import AppConfig


class JobqueueConfig(AppConfig):
    name = "jobqueue"
    verbose_name = "Jobs"

    def ready(self) -> None:
        from jobqueue import lifecycle, schedules  # noqa: F401 — schedules connects its signal receiver
        from jobqueue.dependencies import DependencyListener

        lifecycle.register(DependencyListener())
