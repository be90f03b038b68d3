from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "workflows"

    def ready(self) -> None:
        from jobqueue import lifecycle
        from workflows.listener import WorkflowJobListener

        lifecycle.register(WorkflowJobListener())
