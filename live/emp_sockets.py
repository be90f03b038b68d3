"""The replaced system's sockets. Its client socket, `/ws/client/{client_id}?token=<api key>`, kept for its clients
(EmProps submits steps over it), on top of the event relay.

- `submit_job`: the message's job fields, as POST /api/jobs takes them; its `message_id` becomes the
  idempotency key, so a client re-sending after a reconnect creates no second job. Answer:
  `{type: job_submitted, job_id, message_id}`; the connection is subscribed to the job.
- `subscribe_progress {job_id}`: any job the client may see. The current state comes first (progress,
  or the completion it missed while away), then live updates: nothing is missed across a reconnect.
- `cancel_job {job_id}`: answer `{type: job_cancelled, job_id, message_id}` or an error.
- Pushed: `update_job_progress {job_id, progress, message}` and `complete_job {job_id, worker_id,
  result: {status: success, data} | {status: failed, error} | {status: cancelled}}`, exactly once per
  job on a connection (the original sent completions twice, in two formats).
"""

from __future__ import annotations

import uuid
from typing import Any

from channels.db import database_sync_to_async
from django.db import IntegrityError
from django.utils import timezone
from rest_framework import serializers

from accounts.scoping import owned, readable
from core.errors import DomainError
from core.ids import SOCKET_ID_MAX_LENGTH, is_client_id
from events.relay import ALL_EVENTS_GROUP, group_for
from jobqueue.api.serializers import JobSubmitSerializer
from jobqueue.cancellation import cancel_job
from jobqueue.errors import JobIdTaken, JobNotFound
from jobqueue.models import TERMINAL_STATUSES, Job, JobStatus
from jobqueue.quotas import admit_jobs
from jobqueue.submission import submit_job
from live.snapshot import full_state
from live.socket import LiveConsumer, is_uuid
from wire.json_types import JsonObject, JsonValue

ENVELOPE_FIELDS = ("type", "message_id", "id", "timestamp")  # the message's, not the job's
COMPLETION_EVENTS = {"job_completed", "job_failed", "job_cancelled"}
MAX_FINISHED_PAGE_SIZE = 100


class EmpClientConsumer(LiveConsumer):
    async def connect(self) -> None:
        self.completed: set[str] = set()
        self.client_id = self.scope["url_route"]["kwargs"]["client_id"]
        await super().connect()
        if not is_client_id(self.client_id, SOCKET_ID_MAX_LENGTH):
            await self._refuse_id("client_id")

    def _key_from_query(self, query: dict[str, list[str]]) -> str | None:
        return next(iter(query.get("token") or query.get("api_key") or []), None)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = str(content.get("type")) if isinstance(content, dict) else ""
        handler = {
            "submit_job": self._submit,
            "subscribe_progress": self._subscribe_progress,
            "cancel_job": self._cancel,
        }.get(kind)
        if handler is None or self.api_key is None:
            await super().receive_json(content, **kwargs)  # ping, auth, errors, and the /ws messages
            return
        await handler(content)

    async def _submit(self, message: JsonObject) -> None:
        message_id = message.get("message_id")
        body = {k: v for k, v in message.items() if k not in ENVELOPE_FIELDS}
        if "job_type" not in body and "service_required" not in body and "job" in body:
            body = body["job"]  # some clients nest the job
        if message_id is not None and not (isinstance(message_id, str) and is_uuid(message_id)):
            await self._compat_error(
                message_id, "invalid_message_id", "message_id is the job's id: a UUID (or leave it out)"
            )
            return
        if message_id:
            # The replaced system's contract: the message id is the job's id (EmProps matches its
            # steps by it), and sending the same message again returns the same job.
            body.setdefault("idempotency_key", message_id)
        try:
            job_id = await database_sync_to_async(self._create_job)(body, message_id)
        except serializers.ValidationError as exc:
            await self._compat_error(message_id, "validation_error", exc.detail)
            return
        except DomainError as exc:
            await self._compat_error(message_id, exc.code, exc.message)
            return
        await self._join(group_for("job", job_id), "job", job_id)  # past the limit: submitted, not followed
        await self.send_json({"type": "job_submitted", "job_id": job_id, "message_id": message_id, **_now()})

    def _create_job(self, body: JsonObject, job_id: str | None) -> str:
        submission = JobSubmitSerializer(data=body)
        submission.is_valid(raise_exception=True)
        assert self.api_key is not None  # refused before authentication
        admit_jobs(self.api_key.tenant, 1)
        request = submission.to_job_request()
        request.job_id = uuid.UUID(job_id) if job_id else None
        try:
            job, _ = submit_job(request, self.api_key, correlation_id=f"ws-client:{self.client_id}")
        except IntegrityError as exc:  # the same id created meanwhile by another connection
            raise JobIdTaken(field="job_id", job_id=job_id) from exc
        return str(job.pk)

    async def _subscribe_progress(self, message: JsonObject) -> None:
        job_id = message.get("job_id")
        if not isinstance(job_id, str) or not is_uuid(job_id):
            await self._compat_error(message.get("message_id"), "invalid_message", "job_id must be a UUID")
            return
        assert self.api_key is not None  # refused before authentication
        visible = readable(Job.objects.all(), self.api_key)  # another tenant's job: "no such job"
        job = await database_sync_to_async(visible.filter(pk=job_id).first)()
        if job is None:
            await self._compat_error(message.get("message_id"), "not_found", "no such job")
            return
        if not await self._join(group_for("job", job_id), "job", job_id):
            return
        await self.send_json(
            {"type": "subscribed", "job_id": job_id, "message_id": message.get("message_id"), **_now()}
        )
        if job.status in TERMINAL_STATUSES:
            await self._complete(job_id, job.status, job.worker_id, job.result, job.error)
        elif job.progress:
            await self.send_json(
                {
                    "type": "update_job_progress",
                    "job_id": job_id,
                    "progress": job.progress,
                    "message": job.stage,
                    **_now(),
                }
            )

    async def _cancel(self, message: JsonObject) -> None:
        job_id, message_id = message.get("job_id"), message.get("message_id")
        if not isinstance(job_id, str) or not is_uuid(job_id):
            await self._compat_error(message_id, "invalid_message", "job_id must be a UUID")
            return
        try:
            await database_sync_to_async(self._cancel_own)(job_id)
        except DomainError as exc:
            await self._compat_error(message_id, exc.code, exc.message)
            return
        await self.send_json({"type": "job_cancelled", "job_id": job_id, "message_id": message_id, **_now()})

    def _cancel_own(self, job_id: str) -> None:
        assert self.api_key is not None  # refused before authentication
        if not owned(Job.objects.all(), self.api_key).filter(pk=job_id).exists():
            raise JobNotFound()  # or another tenant's: its id leaks nothing
        cancel_job(job_id, "cancelled by the client")

    async def _push(self, event: JsonObject) -> None:
        """Events become the replaced system's two messages; others are not its business."""
        payload, job_id = event["payload"], str(event.get("job_id"))
        if event["type"] == "job_progress":
            await self.send_json(
                {
                    "type": "update_job_progress",
                    "job_id": job_id,
                    "progress": payload["progress"],
                    "message": payload.get("stage", ""),
                    **_now(),
                }
            )
        elif event["type"] in COMPLETION_EVENTS:
            status = {"job_completed": JobStatus.COMPLETED, "job_failed": JobStatus.FAILED}.get(
                event["type"], JobStatus.CANCELLED
            )
            await self._complete(
                job_id, status, event.get("worker_id"), payload.get("result"), payload.get("error")
            )

    async def _complete(
        self, job_id: str, status: str, worker_id: str | None, result: JsonValue, error: JsonValue
    ) -> None:
        if job_id in self.completed:
            return  # exactly once per job on this connection
        self.completed.add(job_id)
        await self._leave(group_for("job", job_id))  # nothing more to follow
        if status == JobStatus.COMPLETED:
            outcome = {"status": "success", "data": result}
        elif status == JobStatus.FAILED:
            outcome = {"status": "failed", "error": error}
        else:
            outcome = {"status": "cancelled"}
        await self.send_json(
            {"type": "complete_job", "job_id": job_id, "worker_id": worker_id, "result": outcome, **_now()}
        )

    async def _compat_error(self, message_id: JsonValue, code: str, detail: JsonValue) -> None:
        await self.send_json(
            {"type": "error", "code": code, "error": detail, "message_id": message_id, **_now()}
        )


def _now() -> dict[str, str]:
    return {"timestamp": timezone.now().isoformat()}


class EmpMonitorConsumer(LiveConsumer):
    """The replaced system's monitor socket, `/ws/monitor/{monitor_id}?token=<api key>`: `subscribe`
    {topics} follows every event (in the `/ws` shape); `request_full_state` {finishedJobsPagination:
    {page, pageSize}} answers `full_state_snapshot` (workers, machines, jobs by status, system stats)."""

    async def connect(self) -> None:
        self.monitor_id = self.scope["url_route"]["kwargs"]["monitor_id"]
        await super().connect()
        if not is_client_id(self.monitor_id, SOCKET_ID_MAX_LENGTH):
            await self._refuse_id("monitor_id")

    def _key_from_query(self, query: dict[str, list[str]]) -> str | None:
        return next(iter(query.get("token") or query.get("api_key") or []), None)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if self.api_key is None or kind not in ("subscribe", "request_full_state"):
            await super().receive_json(content, **kwargs)
        elif kind == "subscribe":
            await self._join(ALL_EVENTS_GROUP, "all", "")
            topics = content.get("topics") if isinstance(content.get("topics"), list) else []
            await self.send_json(
                {"type": "subscribed", "monitor_id": self.monitor_id, "topics": topics, **_now()}
            )
        else:
            await self._full_state(content.get("finishedJobsPagination") or {})

    async def _full_state(self, pagination: JsonValue) -> None:
        page = pagination.get("page", 1) if isinstance(pagination, dict) else None
        size = pagination.get("pageSize", 20) if isinstance(pagination, dict) else None
        if (
            not isinstance(page, int)
            or not isinstance(size, int)
            or isinstance(page, bool)
            or isinstance(size, bool)
            or page < 1
            or not (1 <= size <= MAX_FINISHED_PAGE_SIZE)
        ):
            await self._error(
                "invalid_message",
                f"finishedJobsPagination needs page >= 1 and 1 <= pageSize <= {MAX_FINISHED_PAGE_SIZE}",
                field="finishedJobsPagination",
            )
            return
        data = await database_sync_to_async(full_state)(self.api_key, page, size)
        await self.send_json(
            {"type": "full_state_snapshot", "monitor_id": self.monitor_id, "data": data, **_now()}
        )
