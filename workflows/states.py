"""The workflow state machine, as the jobs' (`jobqueue/transitions.py`): which status may follow which.

A workflow is `pending` until a step starts, `running` while any step has, and ends once, when its last
step ends: `completed`, `failed` (a step failed for good) or `cancelled`. Ended workflows never move.
"""

from __future__ import annotations

from workflows.models import WorkflowStatus

ALLOWED_TRANSITIONS: dict[WorkflowStatus, frozenset[WorkflowStatus]] = {
    # A workflow whose every step ends before one is seen starting (cancelled, or all failed at once)
    # ends straight from pending.
    WorkflowStatus.PENDING: frozenset(
        {WorkflowStatus.RUNNING, WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED}
    ),
    WorkflowStatus.RUNNING: frozenset(
        {WorkflowStatus.RUNNING, WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED}
    ),
    WorkflowStatus.COMPLETED: frozenset(),
    WorkflowStatus.FAILED: frozenset(),
    WorkflowStatus.CANCELLED: frozenset(),
}


class IllegalWorkflowTransition(Exception):
    """The state machine has no such edge; a programming error, not a race."""


def sources_of(target: WorkflowStatus) -> set[WorkflowStatus]:
    return {source for source, targets in ALLOWED_TRANSITIONS.items() if target in targets}


def checked(current: str, target: WorkflowStatus) -> WorkflowStatus:
    """`target`, if a workflow in `current` may move there; raises otherwise."""
    if target not in ALLOWED_TRANSITIONS[WorkflowStatus(current)]:
        raise IllegalWorkflowTransition(f"a {current} workflow cannot become {target}")
    return target
