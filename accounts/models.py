"""Tenants and their API clients: keys, stored only as hashes, each with a role."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

#: The tenant of a single-team install: every row that existed before tenants belongs to it, and so
#: does work created without a key (`create_job(..., api_key=None)`).
DEFAULT_TENANT_NAME = "default"


#: A tenant's limits: its field (none: the install's default, the setting of the same name in capitals).
QUOTAS = ("max_queued_jobs", "max_submits_per_second", "max_webhook_endpoints", "max_schedules")


def _quota(help_text: str) -> models.PositiveIntegerField[int | None, int | None]:
    return models.PositiveIntegerField(null=True, blank=True, help_text=f"{help_text} None: the default.")


class Tenant(models.Model):
    """An organisation or project: owns jobs, workflows, schedules and the keys that reach them."""

    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    max_queued_jobs = _quota("Most jobs waiting to run at once (pending, scheduled or waiting).")
    max_submits_per_second = _quota("Most jobs submitted in one second.")
    max_webhook_endpoints = _quota("Most webhook endpoints.")
    max_schedules = _quota("Most recurring schedules.")
    # How dispatch shares the fleet (docs/scheduling.md).
    fair_share_weight = models.PositiveSmallIntegerField(
        default=1,
        help_text="Its share of the fleet against other tenants' work at the same priority, by weight.",
    )
    max_running_jobs = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most of its jobs running at once. None: no limit."
    )
    concurrency_limits = models.JSONField(
        default=dict,
        blank=True,
        help_text="{concurrency_key: most of its jobs running at once}, for jobs that name the key.",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(fair_share_weight__gte=1), name="tenant_weight_positive"),
            models.CheckConstraint(
                condition=Q(max_running_jobs__gte=1), name="tenant_running_limit_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def quota(self, name: str) -> int:
        """The tenant's limit `name` (one of QUOTAS): its own, or the install's default."""
        assert name in QUOTAS, name
        own = getattr(self, name)
        return own if own is not None else int(getattr(settings, f"TENANT_{name.upper()}"))

    @classmethod
    def default(cls) -> Tenant:
        tenant, _ = cls.objects.get_or_create(name=DEFAULT_TENANT_NAME)
        return tenant

    @classmethod
    def id_of(cls, api_key: ApiKey | None) -> int:
        """The tenant that owns what `api_key` creates: its own, or the default one for no key."""
        return api_key.tenant_id if api_key is not None else cls.default().pk


class Role(models.TextChoices):
    """What a key may do; each role can do everything the roles before it can."""

    CLIENT = "client", "client: submits and reads its tenant's work"
    OPERATOR = "operator", "operator: also runs the fleet and reads every tenant's jobs and dead letters"
    ADMIN = "admin", "admin: also manages tenants and keys"


_RANK = {Role.CLIENT: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


class ApiKey(models.Model):
    """An API client of one tenant. Only a SHA-256 of the key is stored; the key is shown once."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="api_keys")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CLIENT)
    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=16, help_text="First characters of the key, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    is_active = models.BooleanField(default=True)
    can_complete_delegated = models.BooleanField(
        default=False, help_text="May complete jobs of types no worker runs (POST /api/jobs/{id}/result)."
    )
    speaks_for_emprops = models.BooleanField(
        default=False,
        help_text="May start workflows EmProps is told of (source emprops) and use EmProps collections: "
        "the control plane then calls EmProps with the install's own EmProps key.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Refused from then on; none: never.")
    revoked_at = models.DateTimeField(null=True, blank=True, help_text="Refused from then on.")

    class Meta:
        db_table = "jobqueue_apikey"  # created by the jobqueue app; moved here with its table
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_key(raw_key: str) -> str:
        # Keys are 256-bit random tokens, so a fast hash is safe (no dictionary to attack).
        return hashlib.sha256(raw_key.encode()).hexdigest()

    @classmethod
    def issue(
        cls,
        name: str,
        *,
        tenant: Tenant | None = None,
        role: str = Role.CLIENT,
        can_complete_delegated: bool = False,
        speaks_for_emprops: bool = False,
        expires_at: datetime | None = None,
    ) -> tuple[ApiKey, str]:
        raw_key = f"jq_{secrets.token_urlsafe(32)}"
        api_key = cls.objects.create(
            name=name,
            tenant=tenant or Tenant.default(),
            role=role,
            prefix=raw_key[:10],
            key_hash=cls.hash_key(raw_key),
            can_complete_delegated=can_complete_delegated,
            speaks_for_emprops=speaks_for_emprops,
            expires_at=expires_at,
        )
        return api_key, raw_key

    def is_usable(self, now: datetime | None = None) -> bool:
        """Active, not revoked and not expired (`usable_key` says the same in SQL)."""
        now = now or timezone.now()
        return (
            self.is_active and self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
        )

    def revoke(self) -> None:
        self.revoked_at = timezone.now()
        self.is_active = False
        self.save(update_fields=["revoked_at", "is_active"])

    def has_role(self, role: str) -> bool:
        """This key's role is `role` or one above it."""
        return _RANK[Role(self.role)] >= _RANK[Role(role)]

    @property
    def is_authenticated(self) -> bool:
        return True


def usable_key(via: str, now: datetime | None = None) -> Q:
    """`ApiKey.is_usable` as a filter on the key reached through the relation `via` ("owner", say)."""
    now = now or timezone.now()
    return Q(**{f"{via}__is_active": True, f"{via}__revoked_at": None}) & (
        Q(**{f"{via}__expires_at": None}) | Q(**{f"{via}__expires_at__gt": now})
    )


class Customer(models.Model):
    """A tenant's customer id (the jobs' `customer_id`, which dedicated workers serve), recorded by the
    tenant's first job naming it. Customer ids are each tenant's own: another tenant may name the
    same id, and a worker dedicated to a customer serves its credential's tenant's only."""

    customer_id = models.CharField(max_length=200)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="customers")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "customer_id"], name="customer_per_tenant"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} ({self.tenant})"
