"""A GPU worker's own Prometheus metrics, on a port of its machine (WORKER_METRICS_PORT; off by
default, and on 127.0.0.1 unless WORKER_METRICS_HOST says otherwise): its GPU's utilisation and
memory read at scrape time, the jobs it ran and its connectors' errors. The control plane's view of
the fleet is its own `/metrics`; this is for the machine's operator (and the container's health)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gpu_worker.gpus import BYTES_PER_GB, read_telemetry

logger = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
JOBS = Counter(
    "gpu_worker_jobs_total",
    "Attempts this worker ran, by job type and outcome.",
    ["job_type", "outcome"],
    registry=REGISTRY,
)
CONNECTOR_ERRORS = Counter(
    "gpu_worker_connector_errors_total",
    "Attempts that failed, by job type (its connector) and error code.",
    ["job_type", "code"],
    registry=REGISTRY,
)


# Gauge -> (help, the telemetry reading it shows, the factor to its unit).
GPU_GAUGES = {
    "gpu_utilization_percent": ("GPU utilisation.", "gpu_utilization_percent", 1),
    "gpu_memory_used_bytes": ("GPU memory in use.", "gpu_memory_used_gb", BYTES_PER_GB),
    "gpu_memory_total_bytes": ("GPU memory.", "gpu_memory_total_gb", BYTES_PER_GB),
    "gpu_temperature_celsius": ("GPU temperature.", "temperature_c", 1),
}


class GpuCollector(Collector):
    """The GPU's state when scraped (NVML, as the heartbeat reads it); nothing without an NVIDIA GPU."""

    def __init__(self, gpu_index: int | None) -> None:
        self.gpu_index = gpu_index

    def collect(self) -> Iterator[GaugeMetricFamily]:
        telemetry = read_telemetry(self.gpu_index)
        for name, (help_text, reading, factor) in GPU_GAUGES.items():
            if telemetry.get(reading) is not None:
                family = GaugeMetricFamily(name, help_text, labels=["gpu"])
                family.add_metric([str(self.gpu_index)], telemetry[reading] * factor)
                yield family


def count_attempt(job_type: str, outcome: str, error: object = None) -> None:
    JOBS.labels(job_type, outcome).inc()
    if isinstance(error, dict) and outcome == "failed":
        CONNECTOR_ERRORS.labels(job_type, str(error.get("code", "unknown"))[:64]).inc()


def serve(port: int, host: str, gpu_index: int | None) -> None:
    """Start the metrics port (a daemon thread) when one is configured."""
    if not port:
        return
    REGISTRY.register(GpuCollector(gpu_index))
    start_http_server(port, addr=host, registry=REGISTRY)
    logger.info("metrics on http://%s:%s/metrics", host, port)
