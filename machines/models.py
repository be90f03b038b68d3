"""The worker registry, fed by registration and heartbeat reports over the broker."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from accounts.models import Tenant
from machines import lane_lag


def customers_tenant_field(help_text: str) -> models.ForeignKey[Tenant | None, Tenant | None]:
    """The tenant whose customers a dedication names (customer ids are each tenant's own)."""
    return models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text=help_text
    )


class WorkerStatus(models.TextChoices):
    IDLE = "idle"
    BUSY = "busy"
    OFFLINE = "offline"


# --- Liveness: the one rule, in the three forms its callers need (tests check that they agree) -----
# A worker is live while it was heard from within WORKER_OFFLINE_AFTER_SECONDS (plus the fleet lane's
# lag, `machines.lane_lag`: a heartbeat waiting in a slow lane is not silence) and not marked offline
# (a graceful stop, the lease sweep, or its credential revoked). Silent workers get no work; their
# attempts' leases expire. Only a worker with an active credential is ever live: revoking one marks its
# worker offline in the same transaction, and nothing makes a worker live again without checking its
# credential under a lock the revocation waits for (`machines.registry`), so liveness alone keeps
# dispatch from such a worker at no cost per dispatch.


def heard_since() -> datetime:
    """A worker not heard from since then is silent: it gets no work and its jobs are recovered."""
    return timezone.now() - timedelta(seconds=settings.WORKER_OFFLINE_AFTER_SECONDS + lane_lag.allowance())


#: For raw SQL over `machines_worker w`, with the parameter `%(heard_since)s`.
LIVE_WORKER_SQL = "w.status <> 'offline' AND w.last_seen_at >= %(heard_since)s"


def live_condition() -> Q:
    """For querysets and annotations."""
    return Q(last_seen_at__gte=heard_since()) & ~Q(status=WorkerStatus.OFFLINE)


def silent_condition() -> Q:
    return Q(last_seen_at__lt=heard_since())


class MachineStatus(models.TextChoices):
    STARTING = "starting"  # registered, no worker yet
    ONLINE = "online"  # at least one live worker (the API shows "busy" while any is running a job)
    OFFLINE = "offline"  # no live worker
    ERROR = "error"  # live workers, but every one's engine is failing its health check


class Machine(models.Model):
    """A GPU machine: what it is (reported by its workers at registration) and whether it is up."""

    id = models.CharField(max_length=200, primary_key=True, help_text="From config, or the hostname.")
    hostname = models.CharField(max_length=255, blank=True, default="")
    pool = models.CharField(max_length=64, default="standard")
    gpus = models.JSONField(default=list, blank=True, help_text="[{index, name, memory_total_gb, uuid}]")
    cpu_count = models.PositiveIntegerField(null=True, blank=True)
    ram_gb = models.FloatField(null=True, blank=True)
    software = models.JSONField(default=dict, blank=True, help_text="Driver, CUDA, Python, worker versions.")
    labels = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=MachineStatus.choices, default=MachineStatus.STARTING)
    draining = models.BooleanField(default=False, help_text="Takes no new work; running jobs finish.")
    registered_at = models.DateTimeField(db_default=Now())
    last_seen_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return f"{self.id} ({self.pool}, {self.status}{', draining' if self.draining else ''})"


class WorkerQuerySet(models.QuerySet["Worker"]):
    def live(self) -> WorkerQuerySet:
        return self.filter(live_condition())

    def silent(self) -> WorkerQuerySet:
        return self.filter(silent_condition())


class Worker(models.Model):
    """One job-running process (by default one per GPU), consuming its own Celery queue."""

    id = models.CharField(max_length=200, primary_key=True)
    machine_id = models.CharField(max_length=200)
    hostname = models.CharField(max_length=255, blank=True, default="")
    instance_id = models.CharField(max_length=64, help_text="Changes every time the process starts.")
    queue = models.CharField(max_length=255)
    pool = models.CharField(max_length=64, default="standard")
    job_types = models.JSONField(default=list, help_text="Job types its connectors run.")
    capabilities = models.JSONField(default=list)
    model_names = models.JSONField(default=list, help_text="Models it has loaded or can load.")
    gpu_memory_gb = models.FloatField(default=0)
    gpu_index = models.PositiveSmallIntegerField(null=True, blank=True)
    gpu_name = models.CharField(max_length=200, blank=True, default="")
    slots = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=16, choices=WorkerStatus.choices, default=WorkerStatus.IDLE)
    registered_at = models.DateTimeField(db_default=Now())
    last_seen_at = models.DateTimeField(db_default=Now())
    last_assigned_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True, help_text="When this instance deregistered.")
    info = models.JSONField(default=dict, blank=True, help_text="Everything else the worker reported.")
    seen_attempts = models.JSONField(
        default=list, blank=True, help_text="[job id, attempt] the worker said it received, recently."
    )
    seen_reported_at = models.DateTimeField(null=True, blank=True, help_text="When it last said so.")
    draining = models.BooleanField(default=False, help_text="Its machine is draining: no new work.")
    engine_healthy = models.BooleanField(default=True, help_text="Its engine passed its last health check.")
    health_detail = models.CharField(max_length=500, blank=True, default="")
    customer_allowlist = models.JSONField(
        default=list, blank=True, help_text="Dedicated to these customers only (empty: any customer)."
    )
    customer_denylist = models.JSONField(default=list, blank=True, help_text="Never serves these customers.")
    customers_tenant = customers_tenant_field(
        "Whose customers the allow-list names (its credential's tenant): it serves no other's."
    )
    telemetry = models.JSONField(
        default=dict, blank=True, help_text="GPU utilisation and memory use, from the last heartbeat."
    )

    objects = WorkerQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["status", "last_seen_at"], name="worker_liveness")]

    def __str__(self) -> str:
        return f"{self.id} ({self.pool}, {self.status})"

    @property
    def is_live(self) -> bool:
        """For a loaded row (the liveness rule above)."""
        return self.status != WorkerStatus.OFFLINE and self.last_seen_at >= heard_since()


class JoinToken(models.Model):
    """Lets GPU hosts join the fleet: each worker that presents it buys a credential of its own
    (`machines/credentials.py`) for this token's pool (and customers, when it names some). Only a
    SHA-256 of the token is stored; it is shown once. It always expires."""

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=16, help_text="First characters of the token, to recognise it.")
    token_hash = models.CharField(max_length=64, unique=True)
    pool = models.CharField(max_length=100, help_text="Workers that join with it serve this pool only.")
    customers = models.JSONField(
        default=list, blank=True, help_text="When not empty: the only customers its workers serve."
    )
    customers_tenant = customers_tenant_field(
        "Whose customers those are (customer ids are each tenant's own); none: the default tenant's."
    )
    max_workers = models.PositiveIntegerField(
        null=True, blank=True, default=1, help_text="How many workers may join with it; empty: any number."
    )
    joined = models.PositiveIntegerField(default=0, help_text="Workers that joined with it.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, pool {self.pool})"

    def is_usable(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        full = self.max_workers is not None and self.joined >= self.max_workers
        return self.revoked_at is None and self.expires_at > now and not full


class WorkerCredential(models.Model):
    """A GPU worker's own credential: its broker user (`machines/broker_users.py`), whose secret is
    also its key on fleet messages. Only a SHA-256 of the secret is stored (Redis keeps the same)."""

    worker_id = models.CharField(max_length=100, primary_key=True)
    join_token = models.ForeignKey(
        JoinToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="credentials"
    )
    pool = models.CharField(max_length=100)
    customers = models.JSONField(default=list, blank=True)
    customers_tenant = customers_tenant_field(
        "Whose customers those are (customer ids are each tenant's own); none: the default tenant's."
    )
    machine_id = models.CharField(max_length=200, blank=True, default="")
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.worker_id} ({'revoked' if self.revoked_at else 'active'})"
