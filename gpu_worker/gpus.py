"""NVIDIA GPUs through NVML (nvidia-ml-py): what they are, and how busy they are now.

No driver or no GPU: no GPUs, and the worker runs on its configured values (and says so)."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
from dataclasses import asdict, dataclass
from typing import Any

from wire.json_types import JsonObject

logger = logging.getLogger(__name__)

BYTES_PER_GB = 1024**3


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_total_gb: float
    uuid: str = ""
    driver_version: str = ""
    cuda_version: str = ""

    def as_dict(self) -> JsonObject:
        return asdict(self)


def _nvml() -> Any:
    """The initialised pynvml module, or None when there is no usable NVIDIA driver."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        logger.info("no NVIDIA GPU detected (%s)", exc)
        return None
    return pynvml


def detect_gpus() -> list[GpuInfo]:
    pynvml = _nvml()
    if pynvml is None:
        return []
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda = _cuda_version(pynvml.nvmlSystemGetCudaDriverVersion())
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                GpuInfo(
                    index=index,
                    name=_text(pynvml.nvmlDeviceGetName(handle)),
                    memory_total_gb=round(memory.total / BYTES_PER_GB, 1),
                    uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                    driver_version=driver,
                    cuda_version=cuda,
                )
            )
        return gpus
    finally:
        pynvml.nvmlShutdown()


def read_telemetry(index: int | None) -> JsonObject:
    """Utilisation and memory use of one GPU now ({} without one); sent with every heartbeat."""
    if index is None:
        return {}
    pynvml = _nvml()
    if pynvml is None:
        return {}
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        utilization = pynvml.nvmlDeviceGetUtilizationRates(handle)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        telemetry = {
            "gpu_utilization_percent": int(utilization.gpu),
            "gpu_memory_used_gb": round(memory.used / BYTES_PER_GB, 2),
            "gpu_memory_total_gb": round(memory.total / BYTES_PER_GB, 2),
        }
        with contextlib.suppress(pynvml.NVMLError):  # not every GPU reports it
            telemetry["temperature_c"] = int(
                pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
            )
        return telemetry
    except pynvml.NVMLError as exc:
        logger.warning("reading GPU %s through NVML failed: %s", index, exc)
        return {}
    finally:
        pynvml.nvmlShutdown()


def describe_machine(gpus: list[GpuInfo], labels: dict[str, str]) -> JsonObject:
    """The machine as the control plane records it at registration."""
    from gpu_worker import __version__

    try:
        ram_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / BYTES_PER_GB, 1)
    except (ValueError, OSError, AttributeError):
        ram_gb = None
    return {
        "gpus": [gpu.as_dict() for gpu in gpus],
        "cpu_count": os.cpu_count(),
        "ram_gb": ram_gb,
        "software": {
            "python": platform.python_version(),
            "gpu_worker": __version__,
            "driver": gpus[0].driver_version if gpus else "",
            "cuda": gpus[0].cuda_version if gpus else "",
            "os": platform.platform(),
        },
        "labels": labels,
    }


def _cuda_version(raw: int) -> str:
    """NVML's 12040 -> "12.4"."""
    return f"{raw // 1000}.{raw % 1000 // 10}" if raw else ""


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
