from django.apps import AppConfig


class JobqueueConfig(AppConfig):
    name = "jobqueue"
    verbose_name = "Jobs"
