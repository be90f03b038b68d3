"""The process that runs on GPU machines.

It reaches only the broker: it registers, heartbeats, receives jobs on its own Celery queue, runs them
through connectors and reports back. It never imports Django and needs no database credentials.
"""

__version__ = "0.1.0"
