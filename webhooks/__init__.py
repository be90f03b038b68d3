"""Webhooks: signed delivery of the event log to HTTP endpoints (built by the webhooks issue)."""
