from django.apps import AppConfig


class DispatchConfig(AppConfig):
    name = "dispatch"
    verbose_name = "Dispatch (the control plane)"

    def ready(self) -> None:
        from dispatch.listener import DispatchJobListener
        from jobqueue import lifecycle

        lifecycle.register(DispatchJobListener())
