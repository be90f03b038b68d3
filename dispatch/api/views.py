"""Fleet API: /api/machines (drain, resume), /api/workers, /api/pools, /api/fleet/refusals."""

from __future__ import annotations

import django_filters
import redis
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.views import OperatorView
from core.api.filters import filter_or_400, filter_parameters
from core.api.pagination import paged, read_page
from core.api.schema import PaginationSerializer, envelope, objects
from core.errors import BrokerUnavailable
from dispatch import fleet, refusals, worker_reports
from machines.models import Machine, MachineStatus, Worker


class MachineFilter(django_filters.FilterSet):
    pool = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=MachineStatus.choices)
    draining = django_filters.BooleanFilter()

    class Meta:
        model = Machine
        fields = ["pool", "status", "draining"]


class WorkerFilter(django_filters.FilterSet):
    pool = django_filters.CharFilter()
    machine_id = django_filters.CharFilter()

    class Meta:
        model = Worker
        fields = ["pool", "machine_id"]


MACHINE = envelope("MachineEnvelope", machine=serializers.DictField())


class MachineCollectionView(OperatorView):
    @extend_schema(
        operation_id="machines_list",
        parameters=filter_parameters(MachineFilter),
        responses=envelope("MachinePage", machines=objects(), pagination=PaginationSerializer()),
    )
    def get(self, request: Request) -> Response:
        queryset = filter_or_400(MachineFilter, request.query_params, Machine.objects.order_by("id"))
        return paged("machines", queryset, fleet.machines, read_page(request))


class MachineDetailView(OperatorView):
    @extend_schema(responses=MACHINE)
    def get(self, request: Request, machine_id: str) -> Response:
        get_object_or_404(Machine, pk=machine_id)
        [machine] = fleet.machines(list(Machine.objects.filter(pk=machine_id)))
        machine["recent_failures"] = fleet.recent_failures(machine_id)
        return Response({"success": True, "machine": machine})


class MachineDrainView(OperatorView):
    drain = True

    @extend_schema(request=None, responses=MACHINE)
    def post(self, request: Request, machine_id: str) -> Response:
        """Drain: no new work reaches the machine; running jobs finish. Resume undoes it."""
        get_object_or_404(Machine, pk=machine_id)
        worker_reports.set_draining(machine_id, self.drain)
        [machine] = fleet.machines(list(Machine.objects.filter(pk=machine_id)))
        return Response({"success": True, "machine": machine})


class WorkerCollectionView(OperatorView):
    @extend_schema(
        parameters=filter_parameters(WorkerFilter),
        responses=envelope("WorkerPage", workers=objects(), pagination=PaginationSerializer()),
    )
    def get(self, request: Request) -> Response:
        workers = Worker.objects.order_by("machine_id", "id")
        queryset = filter_or_400(WorkerFilter, request.query_params, workers)
        return paged("workers", queryset, fleet.worker_rows, read_page(request))


class PoolsView(OperatorView):
    @extend_schema(responses=envelope("PoolSummary", pools=objects(), no_eligible_worker=objects()))
    def get(self, request: Request) -> Response:
        return Response({"success": True, **fleet.pools()})


class RefusalsView(OperatorView):
    @extend_schema(
        responses=envelope(
            "FleetRefusals",
            refusals=serializers.DictField(
                child=serializers.IntegerField(), help_text="Ignored worker messages by reason."
            ),
            by_worker=serializers.DictField(
                child=serializers.IntegerField(),
                help_text="Ignored worker messages by the worker that sent them.",
            ),
            dead_letters=serializers.ListField(
                child=serializers.DictField(),
                help_text="The newest messages no consumer could apply: list (so sender), reason, detail, when.",
            ),
        )
    )
    def get(self, request: Request) -> Response:
        """Worker messages ignored because they could not prove their sender or said more than it
        may (`dispatch/refusals.py` lists the reasons), counted since the broker started."""
        try:
            counted, senders, dead = refusals.counts(), refusals.by_sender(), refusals.dead_letters()
        except redis.RedisError as exc:
            raise BrokerUnavailable() from exc
        return Response({"success": True, "refusals": counted, "by_worker": senders, "dead_letters": dead})
