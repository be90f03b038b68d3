"""Checking a workflow definition: names, dependencies, size, and that it is a DAG. Pure functions."""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter

from django.conf import settings

from core.errors import DomainError


class InvalidWorkflow(DomainError):
    """The workflow definition is invalid."""

    code = "invalid_workflow"
    http_status = 400


def default_step_name(index: int) -> str:
    return f"step-{index}"


def resolve_dependencies(names: list[str], depends_on: list[list[int | str]]) -> list[tuple[int, ...]]:
    """Each step's dependencies as step indices; raises InvalidWorkflow naming the offending step.

    A dependency is a step's index in the list or its name."""
    if not names:
        raise InvalidWorkflow("a workflow needs at least one step", field="steps", code="no_steps")
    if len(names) > settings.WORKFLOW_MAX_STEPS:
        raise InvalidWorkflow(
            f"a workflow may have at most {settings.WORKFLOW_MAX_STEPS} steps, this one has {len(names)}",
            field="steps",
            code="too_many_steps",
        )
    by_name: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in by_name:
            raise InvalidWorkflow(
                f"step {index} has the same name as step {by_name[name]}: {name!r}",
                field=f"steps.{index}.name",
                code="duplicate_step_name",
            )
        by_name[name] = index
    resolved = [_resolve_step(index, refs, by_name, len(names)) for index, refs in enumerate(depends_on)]
    _reject_cycles(names, resolved)
    return resolved


def _resolve_step(index: int, refs: list[int | str], by_name: dict[str, int], count: int) -> tuple[int, ...]:
    field = f"steps.{index}.depends_on"
    parents: list[int] = []
    for ref in refs:
        parent = ref if isinstance(ref, int) else by_name.get(ref)
        if parent is None or not 0 <= parent < count:
            raise InvalidWorkflow(
                f"step {index} depends on unknown step {ref!r}", field=field, code="unknown_step"
            )
        if parent == index:
            raise InvalidWorkflow(f"step {index} depends on itself", field=field, code="self_dependency")
        if parent not in parents:
            parents.append(parent)
    return tuple(sorted(parents))


def _reject_cycles(names: list[str], dependencies: list[tuple[int, ...]]) -> None:
    graph = {index: set(parents) for index, parents in enumerate(dependencies)}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        cycle = exc.args[1]  # [a, b, ..., a]
        path = " -> ".join(names[i] for i in reversed(cycle))
        first = min(cycle)
        raise InvalidWorkflow(
            f"steps form a cycle: {path}", field=f"steps.{first}.depends_on", code="dependency_cycle"
        ) from exc
