"""The control plane's Celery app (API, control worker, beat, Flower)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.base")

app = Celery("jobqueue")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
