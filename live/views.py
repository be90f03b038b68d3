"""Pages served by the project (the API lives in jobqueue/api)."""

from __future__ import annotations

from django.views.generic import TemplateView


class MonitorView(TemplateView):
    """The live monitor. The page holds no data: it asks for an API key and reads the monitor socket."""

    template_name = "live/monitor.html"
