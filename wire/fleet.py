"""Fleet messages: what a GPU worker says about itself, on its fleet lane — its registration (the
self-description it repeats with heartbeats), heartbeats, and deregistration.

The lane a message came from names its sender; a description must name that same worker (and its
credential's machine): the control plane refuses one that speaks for anyone else.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from wire import names
from wire.bounds import (
    MAX_SEEN_ATTEMPTS,
    Epoch,
    JobId,
    Name,
    Names,
    ShortText,
    Text,
    WorkerId,
)
from wire.json_types import JsonObject

Key = Annotated[str, Meta(max_length=100)]
Scalar = str | int | float | bool | None
InstanceId = Annotated[str, Meta(min_length=1, max_length=100)]


class Health(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The worker's engine (ComfyUI, an LLM server): a worker whose engine fails gets no work."""

    healthy: bool = True
    detail: Text = ""


class GpuFacts(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    index: Annotated[int, Meta(ge=0, le=1024)]
    name: ShortText = ""
    memory_total_gb: Annotated[float, Meta(ge=0, le=100_000)] = 0.0
    uuid: ShortText = ""
    driver_version: ShortText = ""
    cuda_version: ShortText = ""


class MachineFacts(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """The machine as its workers describe it at registration."""

    gpus: Annotated[list[GpuFacts], Meta(max_length=64)] = []
    cpu_count: Annotated[int, Meta(ge=0, le=100_000)] | None = None
    ram_gb: Annotated[float, Meta(ge=0, le=1_000_000)] | None = None
    software: Annotated[dict[Key, ShortText], Meta(max_length=50)] = {}
    labels: Annotated[dict[Key, ShortText], Meta(max_length=100)] = {}


class Description(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A worker's self-description: what it runs, for whom, on which GPU."""

    worker_id: WorkerId
    instance_id: InstanceId
    machine_id: Name
    hostname: Annotated[str, Meta(max_length=255)] = ""
    pool: Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$", max_length=64)] = "standard"
    job_types: Names = []
    capabilities: Names = []
    model_names: Names = []
    customer_allowlist: Names = []
    customer_denylist: Names = []
    gpu_memory_gb: Annotated[float, Meta(ge=0, le=100_000)] | None = None
    gpu_index: Annotated[int, Meta(ge=0, le=1024)] | None = None
    gpu_name: ShortText | None = None
    slots: Annotated[int, Meta(ge=1, le=256)] = 1
    connectors: Names = []
    health: Health | None = None
    cuda_visible_devices: ShortText | None = None
    machine: MachineFacts | None = None


class FleetMessage(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    task: ClassVar[str]


class Register(FleetMessage, kw_only=True, frozen=True):
    task: ClassVar[str] = names.REGISTER_WORKER_TASK
    description: Description


SeenAttempt = tuple[JobId, Annotated[int, Meta(ge=0, le=1_000_000)]]


class Heartbeat(FleetMessage, kw_only=True, frozen=True):
    """Alive: the attempts it received (dated by `sent_at`, its clock), its engine's health, its GPU's
    telemetry, and its description, from which an instance the control plane lost registers again."""

    task: ClassVar[str] = names.HEARTBEAT_TASK
    instance_id: InstanceId
    seen_attempts: Annotated[list[SeenAttempt], Meta(max_length=MAX_SEEN_ATTEMPTS)] | None = None
    sent_at: Epoch | None = None
    health: Health = msgspec.field(default_factory=Health)
    telemetry: Annotated[dict[Key, Scalar], Meta(max_length=100)] = {}
    description: Description | None = None

    def facts(self) -> JsonObject:
        """What the registry records of a heartbeat (`machines.registry.Beat`)."""
        facts = msgspec.to_builtins(self)
        facts.pop("description", None)
        return facts  # type: ignore[no-any-return]


class Deregister(FleetMessage, kw_only=True, frozen=True):
    """A graceful stop: no new work; the attempts it still runs finish."""

    task: ClassVar[str] = names.DEREGISTER_WORKER_TASK
    instance_id: InstanceId


FLEET_MESSAGES: tuple[type[FleetMessage], ...] = (Register, Heartbeat, Deregister)


def description_dict(description: Description) -> JsonObject:
    """The description as the registry stores it (fields left at their defaults are omitted)."""
    return msgspec.to_builtins(description)  # type: ignore[no-any-return]
