"""The wire contract between the control plane and GPU workers: every message on every lane and
queue, and the job spec, as typed structures with bounds (msgspec), and the one edge where raw
broker bytes become those structures (`wire.edge`).

Both sides import this package and neither imports the other; it holds no Django and nothing of the
control plane, so GPU machines run it without database credentials or Django at all. Change a
message here and both sides change together.
"""
