"""The connector registry: connector name -> class."""

from __future__ import annotations

from gpu_worker.connectors.a1111 import A1111Connector
from gpu_worker.connectors.base import Connector
from gpu_worker.connectors.comfyui import ComfyUIConnector
from gpu_worker.connectors.http_json import HttpJsonConnector
from gpu_worker.connectors.ollama import OllamaConnector
from gpu_worker.connectors.openai_compat import OpenAIConnector
from gpu_worker.connectors.simulation import SimulationConnector

REGISTRY: dict[str, type[Connector]] = {
    connector.name: connector
    for connector in (
        SimulationConnector,
        ComfyUIConnector,
        A1111Connector,
        OpenAIConnector,
        OllamaConnector,
        HttpJsonConnector,
    )
}


def build_connectors(names: list[str]) -> dict[str, Connector]:
    """Instantiate the named connectors and index them by the job types they run."""
    unknown = sorted(set(names) - set(REGISTRY))
    if unknown:
        raise ValueError(f"unknown connectors {unknown}; available: {sorted(REGISTRY)}")
    by_job_type: dict[str, Connector] = {}
    for name in names:
        connector = REGISTRY[name]()
        for job_type in connector.job_types:
            by_job_type[job_type] = connector
    return by_job_type
