"""Why a waiting job waits: how many live workers could take it, or the first requirement none meets.

The same rules as the dispatcher's SQL (`dispatch.JOB_MATCHES_WORKER`), applied one at a time to the
live workers, so the answer names the requirement that rules the last of them out."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from jobqueue.models import Job
from machines.models import Worker


def _serves_customer(job: Job, worker: Worker) -> bool:
    if worker.customer_allowlist and job.customer_id not in worker.customer_allowlist:
        return False
    if job.customer_id and job.customer_id in worker.customer_denylist:
        return False
    return not job.requires_dedicated_worker or job.customer_id in worker.customer_allowlist


_CHECKS: list[tuple[str, Callable[[Job, Worker], bool], Callable[[Job], str]]] = [
    ("type", lambda j, w: j.type in w.job_types, lambda j: f"no live worker runs {j.type!r} jobs"),
    (
        "pool",
        lambda j, w: j.required_pool is None or j.required_pool == w.pool,
        lambda j: f"no live worker in pool {j.required_pool!r} runs it",
    ),
    (
        "capabilities",
        lambda j, w: set(j.required_capabilities) <= set(w.capabilities),
        lambda j: f"no live worker that could take it has capabilities {j.required_capabilities}",
    ),
    (
        "models",
        lambda j, w: set(j.required_models) <= set(w.model_names),
        lambda j: f"no live worker that could take it has models {j.required_models}",
    ),
    (
        "gpu_memory_gb",
        lambda j, w: j.required_gpu_memory_gb is None or j.required_gpu_memory_gb <= w.gpu_memory_gb,
        lambda j: f"no live worker that could take it has {j.required_gpu_memory_gb:g} GB of GPU memory",
    ),
    (
        "customer",
        _serves_customer,
        lambda j: (
            f"no live worker that could take it may serve customer {j.customer_id!r}"
            + (
                " (strict isolation: it needs a worker dedicated to that customer)"
                if j.requires_dedicated_worker
                else ""
            )
        ),
    ),
    (
        "available",
        lambda j, w: not w.draining and w.engine_healthy,
        lambda j: "every worker that could take it is draining or its engine is down",
    ),
]


def explain(job: Job, live_workers: Iterable[Worker] | None = None) -> dict[str, Any]:
    candidates = list(Worker.objects.live() if live_workers is None else live_workers)
    for requirement, meets, message in _CHECKS:
        candidates = [worker for worker in candidates if meets(job, worker)]
        if not candidates:
            return {"eligible_workers": 0, "unmet": {"requirement": requirement, "message": message(job)}}
    return {"eligible_workers": len(candidates), "unmet": None}
