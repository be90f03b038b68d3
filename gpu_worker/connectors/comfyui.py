"""ComfyUI: submit an API-format workflow (`POST /prompt`), follow it over ComfyUI's WebSocket
(`progress`, `executing`, `executed`, `execution_error`, `execution_interrupted`), fetch its outputs
(`/history/{prompt_id}`, `/view`) into the artifact store, and interrupt it on cancel or timeout.

Job payload: {"workflow": {<node id>: {"class_type": ..., "inputs": {...}}, ...}}.
Configured by COMFYUI_URL (default http://127.0.0.1:8188, ComfyUI's own default).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import requests
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

from gpu_worker.artifacts import ArtifactStore
from gpu_worker.connectors.base import JobCancelled, JobContext, PermanentError, TransientError
from gpu_worker.connectors.engine_http import EngineConnector, check, engine_errors, timeout_for
from wire.json_types import JsonObject

ENGINE = "comfyui"
OUTPUT_KINDS = ("images", "gifs", "videos", "audio")
RECV_POLL_S = 0.5  # how often a quiet socket gives way to the cancellation and deadline checks
OUT_OF_MEMORY_MARKERS = ("out of memory", "outofmemory")


class ComfyUIConnector(EngineConnector):
    name = "comfyui"
    job_types = ("comfyui",)

    engine = ENGINE
    url_variable = "COMFYUI_URL"
    default_url = "http://127.0.0.1:8188"  # ComfyUI's own default
    health_path = "/system_stats"

    def __init__(self, base_url: str | None = None, store: ArtifactStore | None = None) -> None:
        super().__init__(base_url, store)
        self.ws_url = "ws" + self.base_url.removeprefix("http")

    def run(self, job: JobContext) -> JsonObject:
        workflow = job.payload.get("workflow")
        if not isinstance(workflow, dict) or not workflow:
            raise PermanentError(
                "payload.workflow must be a ComfyUI API-format workflow", code="INVALID_PAYLOAD"
            )
        client_id = uuid.uuid4().hex
        try:
            socket = connect(f"{self.ws_url}/ws?clientId={client_id}", open_timeout=5, max_size=None)
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise TransientError(
                f"ComfyUI's WebSocket is unreachable: {exc}", code="COMFYUI_UNREACHABLE"
            ) from exc
        with socket:
            prompt_id = self._queue(job, workflow, client_id)
            self._follow(job, socket, prompt_id, total_nodes=len(workflow))
        return {"prompt_id": prompt_id, "outputs": self._collect_outputs(job, prompt_id)}

    def _queue(self, job: JobContext, workflow: JsonObject, client_id: str) -> str:
        with engine_errors(ENGINE):
            response = self.session.post(
                f"{self.base_url}/prompt",
                json={"prompt": workflow, "client_id": client_id},
                timeout=timeout_for(job),
            )
        if response.status_code == 400:  # ComfyUI's verdict on the workflow itself: trying again won't help
            body = _json(response)
            message = (body.get("error") or {}).get("message") or response.text[:500]
            raise PermanentError(
                f"ComfyUI refused the workflow: {message}",
                code="COMFYUI_INVALID_WORKFLOW",
                details={"node_errors": body.get("node_errors", {})},
            )
        prompt_id: str = check(response, ENGINE).json()["prompt_id"]
        return prompt_id

    def _follow(self, job: JobContext, socket: Any, prompt_id: str, total_nodes: int) -> None:
        done_nodes: set[str] = set()
        while True:
            if job.is_cancelled() or job.time_left() <= 0 or job.interrupted.is_set():
                self._interrupt(prompt_id)
                job.checkpoint()  # raises JobCancelled or JobTimedOut
            try:
                raw = socket.recv(timeout=RECV_POLL_S)
            except TimeoutError:
                continue
            except ConnectionClosed as exc:
                raise TransientError(
                    "ComfyUI closed its WebSocket mid-run", code="COMFYUI_DISCONNECTED"
                ) from exc
            if isinstance(raw, bytes):
                continue  # live previews
            message = json.loads(raw)
            kind, data = message.get("type"), message.get("data") or {}
            if data.get("prompt_id") not in (None, prompt_id):
                continue  # another client's prompt
            if kind == "progress" and data.get("max"):
                fraction = (len(done_nodes) + data["value"] / data["max"]) / max(1, total_nodes)
                job.report_progress(
                    min(99, int(fraction * 100)), f"node {data.get('node')}: {data['value']}/{data['max']}"
                )
            elif kind == "executing":
                if data.get("node") is None:
                    return  # the prompt finished
            elif kind == "executed":
                done_nodes.add(str(data.get("node")))
            elif kind == "execution_cached":
                done_nodes.update(str(node) for node in data.get("nodes", []))
            elif kind == "execution_success":
                return
            elif kind == "execution_error":
                raise _execution_error(data)
            elif kind == "execution_interrupted":
                if job.is_cancelled():
                    raise JobCancelled()
                raise TransientError("ComfyUI interrupted the prompt", code="COMFYUI_INTERRUPTED")

    def _interrupt(self, prompt_id: str) -> None:
        """Stop it running, and take it off ComfyUI's queue if it has not started."""
        try:
            self.session.post(f"{self.base_url}/interrupt", json={"prompt_id": prompt_id}, timeout=5)
            self.session.post(f"{self.base_url}/queue", json={"delete": [prompt_id]}, timeout=5)
        except requests.RequestException:
            pass  # it is being abandoned either way; the attempt's outcome says why

    def _collect_outputs(self, job: JobContext, prompt_id: str) -> list[JsonObject]:
        with engine_errors(ENGINE):
            history = check(
                self.session.get(f"{self.base_url}/history/{prompt_id}", timeout=timeout_for(job)), ENGINE
            ).json()
            outputs = []
            for node_id, produced in (history.get(prompt_id) or {}).get("outputs", {}).items():
                for kind in OUTPUT_KINDS:
                    for file in produced.get(kind, []):
                        outputs.append(self._keep(job, node_id, kind, file))
        return outputs

    def _keep(self, job: JobContext, node_id: str, kind: str, file: dict[str, str]) -> JsonObject:
        params = {
            "filename": file["filename"],
            "subfolder": file.get("subfolder", ""),
            "type": file.get("type", "output"),
        }
        response = check(
            self.session.get(f"{self.base_url}/view", params=params, timeout=timeout_for(job)), ENGINE
        )
        content_type = response.headers.get("content-type", "application/octet-stream")
        url = self.store.put(job.spec.job_id, f"{node_id}-{file['filename']}", response.content, content_type)
        return {
            "node": node_id,
            "kind": kind,
            "filename": file["filename"],
            "content_type": content_type,
            "url": url,
        }


def _execution_error(data: JsonObject) -> Exception:
    message = str(data.get("exception_message", "")).strip()
    details = {k: data.get(k) for k in ("node_id", "node_type", "exception_type") if data.get(k)}
    text = f"{message} {data.get('exception_type', '')}".lower()
    if any(marker in text for marker in OUT_OF_MEMORY_MARKERS):
        return TransientError(
            f"ComfyUI ran out of GPU memory: {message}", code="COMFYUI_OUT_OF_MEMORY", details=details
        )
    return PermanentError(
        f"ComfyUI failed in node {data.get('node_id')}: {message}",
        code="COMFYUI_EXECUTION_ERROR",
        details=details,
    )


def _json(response: requests.Response) -> JsonObject:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
