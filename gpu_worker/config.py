"""GPU worker configuration: command-line flags, each with an environment variable default."""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from gpu_worker.gpus import GpuInfo, describe_machine, detect_gpus
from gpu_worker.results import DEFAULT_RESULT_MAX_BYTES
from wire.json_types import JsonObject
from wire.names import HARD_TIMEOUT_GRACE_SECONDS

# On SIGTERM, how long the running job may take to finish before it is handed back.
SHUTDOWN_GRACE_SECONDS = 30.0
# How long the broker may refuse the worker's credential before the worker takes it as revoked and
# exits (a broker that restarted refuses everyone until the control plane makes its users again).
CREDENTIAL_GRACE_SECONDS = 30.0
DEFAULT_CREDENTIALS_DIR = Path.home() / ".local" / "state" / "gpu_worker"


@dataclass
class WorkerConfig:
    broker_url: str
    worker_id: str
    machine_id: str
    pool: str
    connectors: list[str]
    capabilities: list[str]
    models: list[str]
    gpu_memory_gb: float
    gpu_index: int | None
    gpu_name: str
    slots: int
    heartbeat_seconds: float
    hard_timeout_grace_seconds: float
    log_level: str
    log_format: str
    shutdown_grace_seconds: float = SHUTDOWN_GRACE_SECONDS
    gpus: list[GpuInfo] = field(default_factory=list)
    customer_allowlist: list[str] = field(default_factory=list)
    customer_denylist: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    # How many worker processes this command runs (a supervisor when more than one), on which GPUs.
    worker_slots_by_gpu: list[int] = field(default_factory=list)
    supervised: bool = False
    # Joining the fleet (`gpu_worker.credentials`): the token, the API that exchanges it, and where
    # the credential it buys is kept.
    join_token: str = ""
    api_url: str = ""
    credentials_dir: str = ""
    credential_grace_seconds: float = CREDENTIAL_GRACE_SECONDS
    result_max_bytes: int = DEFAULT_RESULT_MAX_BYTES
    # This process's Prometheus metrics (gpu_worker/metrics.py): off (0) unless a port is given.
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"

    def registration(self, instance_id: str, job_types: list[str]) -> JsonObject:
        """The self-description sent to the control plane on registration and with every heartbeat."""
        return {
            "worker_id": self.worker_id,
            "instance_id": instance_id,
            "machine_id": self.machine_id,
            "hostname": socket.gethostname(),
            "pool": self.pool,
            "job_types": sorted(job_types),
            "capabilities": sorted(set(self.capabilities)),
            "model_names": sorted(set(self.models)),
            "gpu_memory_gb": self.gpu_memory_gb,
            "gpu_index": self.gpu_index,
            "gpu_name": self.gpu_name,
            "slots": self.slots,
            "connectors": self.connectors,
            "customer_allowlist": sorted(set(self.customer_allowlist)),
            "customer_denylist": sorted(set(self.customer_denylist)),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "machine": describe_machine(self.gpus, self.labels),
        }


def parse_config(argv: list[str] | None = None) -> WorkerConfig:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m gpu_worker", description="Run a GPU worker.")
    parser.add_argument(
        "--broker-url",
        default=env("BROKER_URL") or env("REDIS_URL") or "redis://127.0.0.1:6379/0",
        help="prefer BROKER_URL in the environment: a URL with a password on the command line is in `ps`",
    )
    parser.add_argument(
        "--join-token",
        default=env("WORKER_JOIN_TOKEN", ""),
        help="join the fleet with this token (prefer WORKER_JOIN_TOKEN in the environment: `ps` shows flags)",
    )
    parser.add_argument(
        "--api-url", default=env("JOBQUEUE_API_URL", ""), help="the API that exchanges the join token"
    )
    parser.add_argument(
        "--credentials-dir",
        default=env("WORKER_CREDENTIALS_DIR", str(DEFAULT_CREDENTIALS_DIR)),
        help="where the credential bought with the join token is kept (readable by its owner only)",
    )
    parser.add_argument(
        "--credential-grace-seconds",
        type=float,
        default=float(env("WORKER_CREDENTIAL_GRACE_SECONDS", str(CREDENTIAL_GRACE_SECONDS))),
        help="how long the broker may refuse the credential before the worker exits as revoked",
    )
    parser.add_argument(
        "--result-max-bytes",
        type=int,
        default=int(env("WORKER_RESULT_MAX_BYTES", str(DEFAULT_RESULT_MAX_BYTES))),
        help="a larger result fails its job (put large outputs in the artifact store); keep it at or "
        "below the control plane's JOB_RESULT_MAX_BYTES",
    )
    parser.add_argument("--worker-id", default=env("WORKER_ID"))
    parser.add_argument("--machine-id", default=env("MACHINE_ID") or socket.gethostname())
    parser.add_argument("--pool", default=env("WORKER_POOL", "standard"))
    parser.add_argument(
        "--connectors", default=env("WORKER_CONNECTORS", "simulation"), help="comma-separated connector names"
    )
    parser.add_argument("--capabilities", default=env("WORKER_CAPABILITIES", ""), help="comma-separated")
    parser.add_argument("--models", default=env("WORKER_MODELS", ""), help="comma-separated")
    parser.add_argument("--gpu-index", type=int, default=_int_or_none(env("WORKER_GPU_INDEX")))
    parser.add_argument(
        "--gpu-memory-gb",
        type=float,
        default=_float_or_none(env("WORKER_GPU_MEMORY_GB")),
        help="GPU memory to advertise when no GPU is detected",
    )
    parser.add_argument("--slots", type=int, default=int(env("WORKER_SLOTS", "1")))
    parser.add_argument(
        "--heartbeat-seconds", type=float, default=float(env("WORKER_HEARTBEAT_SECONDS", "5"))
    )
    parser.add_argument(
        "--hard-timeout-grace-seconds",
        type=float,
        default=float(env("WORKER_HARD_TIMEOUT_GRACE_SECONDS", str(HARD_TIMEOUT_GRACE_SECONDS))),
        help="how long a job past its timeout may take to stop before the worker gives it up and restarts",
    )
    parser.add_argument(
        "--gpu-count",
        type=int,
        default=_int_or_none(env("WORKER_GPU_COUNT")),
        help="GPUs to run workers for when NVML finds none (default: what NVML finds, else 1)",
    )
    parser.add_argument(
        "--workers-per-gpu",
        type=int,
        default=int(env("WORKERS_PER_GPU", "1")),
        help="worker processes per GPU",
    )
    parser.add_argument(
        "--customers",
        default=env("WORKER_CUSTOMERS", ""),
        help="dedicate to these customers only (comma-separated)",
    )
    parser.add_argument(
        "--exclude-customers",
        default=env("WORKER_EXCLUDED_CUSTOMERS", ""),
        help="never serve these customers",
    )
    parser.add_argument(
        "--labels", default=env("MACHINE_LABELS", ""), help="key=value,... recorded on the machine"
    )
    parser.add_argument(
        "--shutdown-grace-seconds",
        type=float,
        default=float(env("WORKER_SHUTDOWN_GRACE_SECONDS", str(SHUTDOWN_GRACE_SECONDS))),
        help="on SIGTERM, how long the running job may take to finish before it is handed back",
    )
    parser.add_argument("--log-level", default=env("LOG_LEVEL", "INFO"))
    parser.add_argument("--log-format", choices=("plain", "json"), default=env("LOG_FORMAT", "plain"))
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(env("WORKER_METRICS_PORT", "0")),
        help="serve Prometheus metrics on this port (0: off); a supervisor's workers use the next ones",
    )
    parser.add_argument(
        "--metrics-host",
        default=env("WORKER_METRICS_HOST", "127.0.0.1"),
        help="the address the metrics port listens on (this machine only, by default)",
    )
    args = parser.parse_args(argv)
    if args.slots < 1:
        parser.error("--slots must be at least 1")
    if args.workers_per_gpu < 1:
        parser.error("--workers-per-gpu must be at least 1")
    supervised = env(SUPERVISED_ENV) == "1"

    gpus = detect_gpus()
    gpu_indices = (
        [args.gpu_index]
        if args.gpu_index is not None
        else [g.index for g in gpus]
        if gpus
        else list(range(args.gpu_count or 1))
    )
    gpu = _pick_gpu(gpus, args.gpu_index)
    gpu_memory = gpu.memory_total_gb if gpu else (args.gpu_memory_gb or 0.0)
    gpu_index = gpu.index if gpu else args.gpu_index
    worker_id = args.worker_id or f"{args.machine_id}-gpu{gpu_index if gpu_index is not None else 0}"
    return WorkerConfig(
        broker_url=args.broker_url,
        worker_id=worker_id,
        machine_id=args.machine_id,
        pool=args.pool,
        connectors=[c.strip() for c in args.connectors.split(",") if c.strip()],
        capabilities=[c.strip() for c in args.capabilities.split(",") if c.strip()],
        models=[m.strip() for m in args.models.split(",") if m.strip()],
        gpu_memory_gb=gpu_memory,
        gpu_index=gpu_index,
        gpu_name=gpu.name if gpu else "",
        slots=args.slots,
        heartbeat_seconds=args.heartbeat_seconds,
        hard_timeout_grace_seconds=args.hard_timeout_grace_seconds,
        log_level=args.log_level,
        shutdown_grace_seconds=args.shutdown_grace_seconds,
        gpus=gpus,
        customer_allowlist=_names(args.customers),
        customer_denylist=_names(args.exclude_customers),
        labels=dict(pair.split("=", 1) for pair in _names(args.labels) if "=" in pair),
        worker_slots_by_gpu=[index for index in gpu_indices for _ in range(args.workers_per_gpu)],
        supervised=supervised,
        join_token=args.join_token,
        api_url=args.api_url,
        credentials_dir=args.credentials_dir,
        credential_grace_seconds=args.credential_grace_seconds,
        result_max_bytes=args.result_max_bytes,
        log_format=args.log_format,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
    )


SUPERVISED_ENV = "GPU_WORKER_SUPERVISED"  # set by the supervisor on the workers it starts


def _names(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _pick_gpu(gpus: list[GpuInfo], index: int | None) -> GpuInfo | None:
    if not gpus:
        return None
    if index is None:
        return gpus[0]
    return next((gpu for gpu in gpus if gpu.index == index), None)


def _int_or_none(raw: str | None) -> int | None:
    return int(raw) if raw not in (None, "") else None


def _float_or_none(raw: str | None) -> float | None:
    return float(raw) if raw not in (None, "") else None
