"""The workflow engine's hooks into the job lifecycle (registered in `WorkflowsConfig.ready`)."""

from __future__ import annotations

from collections.abc import Sequence

from jobqueue.errors import JobConflict
from jobqueue.job_request import JobRequest
from jobqueue.lifecycle import JobListener
from jobqueue.models import Job, JobKey
from workflows import client_driven, release


class WorkflowJobListener(JobListener):
    def job_submitted(self, job: Job, request: JobRequest) -> None:
        if job.workflow_id and not request.workflow_step:
            client_driven.join_workflow(job, request)

    def job_started(self, job: Job) -> None:
        if job.workflow_id:
            release.mark_running(job.tenant_id, job.workflow_id)

    def job_finished(self, job: Job) -> None:
        step = release.step_of(job)
        if step is not None:
            release.step_finished(step, job)

    def held_back(self, job_ids: Sequence[JobKey]) -> set[JobKey]:
        return release.held_back(job_ids)

    def before_requeue(self, job: Job) -> None:
        if release.step_of(job) is not None:
            raise JobConflict(
                "this job is a workflow step; its workflow has moved on without it (resubmit the workflow)",
                code="workflow_step_not_requeueable",
            )
