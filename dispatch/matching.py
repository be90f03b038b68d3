"""Which worker may run which job: the one definition of eligibility, in SQL for the dispatcher and in
Python for "why is this job waiting", side by side (tests/integration check that they agree).

A job matches a worker when the worker runs its type, satisfies every requirement, and may serve its
customer: a worker with an allow-list serves only those customers of its credential's tenant (it is
dedicated to them; customer ids are each tenant's own, so another tenant's customer of the same id is
not theirs), one with a deny-list never serves customers of those ids, and a
`customer_isolation: strict` job runs only on a worker dedicated to its customer. A worker takes
work while it is live (`machines.models`: which a worker without an active credential never is), not
draining, and its engine healthy."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import connection

from jobqueue.models import Job
from machines.models import LIVE_WORKER_SQL, Worker, heard_since
from wire.json_types import JsonObject


# --- SQL, over a pending job (`j`, or the alias given) and a worker `w` ---------------------------
def _dedicated(job: str) -> str:
    return f"({job}.tenant_id = w.customers_tenant_id AND w.customer_allowlist ? {job}.customer_id)"


def shape_matches_worker(job: str = "j") -> str:
    """What a job's shape decides (`jobqueue.models.SHAPE_SQL` hashes every field of the job read
    here): true for one job of a shape, true for all of them."""
    return f"""
    {job}.type IN (SELECT jsonb_array_elements_text(w.job_types))
    AND w.capabilities @> {job}.required_capabilities
    AND w.model_names @> {job}.required_models
    AND ({job}.required_gpu_memory_gb IS NULL OR {job}.required_gpu_memory_gb <= w.gpu_memory_gb)
    AND ({job}.required_pool IS NULL OR {job}.required_pool = w.pool)
    AND (NOT {job}.requires_dedicated_worker OR {_dedicated(job)})
"""


def customer_served(job: str = "j") -> str:
    """What each job's own customer decides."""
    return f"""
    (jsonb_array_length(w.customer_allowlist) = 0 OR {_dedicated(job)})
    AND ({job}.customer_id IS NULL OR NOT w.customer_denylist ? {job}.customer_id)
"""


JOB_MATCHES_WORKER = f"{shape_matches_worker()} AND {customer_served()}"
AVAILABLE = "NOT w.draining AND w.engine_healthy"
TAKES_WORK = f"{LIVE_WORKER_SQL} AND {AVAILABLE}"


# --- Python, over loaded rows: the same rules, one at a time, so an answer can name the one that fails
def is_available(worker: Worker) -> bool:
    return not worker.draining and worker.engine_healthy


def takes_work(worker: Worker) -> bool:
    return worker.is_live and is_available(worker)


def _is_dedicated(job: Job, worker: Worker) -> bool:
    return worker.customers_tenant_id == job.tenant_id and job.customer_id in worker.customer_allowlist


def _serves_customer(job: Job, worker: Worker) -> bool:
    if worker.customer_allowlist and not _is_dedicated(job, worker):
        return False
    if job.customer_id and job.customer_id in worker.customer_denylist:
        return False
    return not job.requires_dedicated_worker or _is_dedicated(job, worker)


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
        lambda j, w: is_available(w),
        lambda j: "every worker that could take it is draining or its engine is down",
    ),
]


def explain(job: Job, live_workers: Iterable[Worker] | None = None) -> JsonObject:
    """How many live workers could take the pending `job`, or the first requirement none meets."""
    candidates = list(Worker.objects.live() if live_workers is None else live_workers)
    for requirement, meets, message in _CHECKS:
        candidates = [worker for worker in candidates if meets(job, worker)]
        if not candidates:
            return {"eligible_workers": 0, "unmet": {"requirement": requirement, "message": message(job)}}
    return {"eligible_workers": len(candidates), "unmet": None}


def eligibility(job: Job) -> JsonObject:
    """`explain` at a bounded cost, for every read of a pending job: eligible workers are counted in
    SQL up to EXPLAIN_WORKERS_MAX (`eligible_workers_exact` says whether there are more); when none
    is, the first requirement they fail is read over at most that many live workers of its type."""
    bound = settings.EXPLAIN_WORKERS_MAX
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT count(*) FROM (
                SELECT 1 FROM jobqueue_job j, machines_worker w
                WHERE j.id = %(job_id)s AND {JOB_MATCHES_WORKER} AND {TAKES_WORK} LIMIT %(bound)s
            ) eligible""",
            {"job_id": job.pk, "bound": bound + 1, "heard_since": heard_since()},
        )
        (eligible,) = cursor.fetchone()
    if eligible:
        return {
            "eligible_workers": min(eligible, bound),
            "eligible_workers_exact": eligible <= bound,
            "unmet": None,
        }
    of_its_type = Worker.objects.live().filter(job_types__contains=[job.type]).order_by("id")[:bound]
    return {**explain(job, of_its_type), "eligible_workers_exact": True}
