"""Project settings package: Django settings, the Celery app and the embedded dev services."""
