"""The events that end a job or a workflow are defined once (`events.types`), and each names a status
the job or the workflow really has."""

from events.types import ENDINGS, JOB_ENDINGS, WORKFLOW_ENDINGS, EventType
from jobqueue.models import TERMINAL_STATUSES, JobStatus
from workflows.models import WorkflowStatus


def test_each_job_ending_leaves_a_final_job_status():
    assert {JobStatus(status) for status in JOB_ENDINGS.values()} == TERMINAL_STATUSES
    assert set(JOB_ENDINGS) == {EventType.JOB_COMPLETED, EventType.JOB_FAILED, EventType.JOB_CANCELLED}


def test_each_workflow_ending_leaves_a_workflow_status():
    assert {WorkflowStatus(status) for status in WORKFLOW_ENDINGS.values()} == {
        WorkflowStatus.COMPLETED,
        WorkflowStatus.FAILED,
        WorkflowStatus.CANCELLED,
    }


def test_endings_are_exactly_the_jobs_and_the_workflows():
    assert set(ENDINGS) == set(JOB_ENDINGS) | set(WORKFLOW_ENDINGS)
