"""The AUTOMATIC1111 Stable Diffusion web UI API: `/sdapi/v1/txt2img` and `img2img`, progress from
`/sdapi/v1/progress` while the request runs, `/sdapi/v1/interrupt` on cancel or timeout.

Job payload: {"mode": "txt2img" (default) | "img2img", "params": {...the API's request body...}}.
Configured by A1111_URL (default http://127.0.0.1:7860).
"""

from __future__ import annotations

import base64
import contextlib
import threading

import requests

from gpu_worker.connectors.base import JobCancelled, JobContext, JobTimedOut, PermanentError
from gpu_worker.connectors.engine_http import EngineConnector, check, engine_errors, timeout_for
from wire.json_types import JsonObject

ENGINE = "a1111"
PROGRESS_POLL_S = 0.3


class A1111Connector(EngineConnector):
    name = "a1111"
    job_types = ("a1111",)

    engine = ENGINE
    url_variable = "A1111_URL"
    default_url = "http://127.0.0.1:7860"
    health_path = "/sdapi/v1/progress"

    def run(self, job: JobContext) -> JsonObject:
        mode = job.payload.get("mode", "txt2img")
        params = job.payload.get("params", {})
        if mode not in ("txt2img", "img2img") or not isinstance(params, dict):
            raise PermanentError("payload needs mode txt2img or img2img, and params", code="INVALID_PAYLOAD")
        outcome: JsonObject = {}

        def generate() -> None:  # the request blocks until the images are done; progress comes meanwhile
            try:
                outcome["response"] = self.session.post(
                    f"{self.base_url}/sdapi/v1/{mode}", json=params, timeout=timeout_for(job)
                )
            except requests.RequestException as exc:
                outcome["error"] = exc

        request = threading.Thread(target=generate, name="a1111-request", daemon=True)
        request.start()
        try:
            while request.is_alive():
                job.sleep(PROGRESS_POLL_S)
                self._report_progress(job)
        except (JobCancelled, JobTimedOut):
            self._interrupt()
            raise
        with engine_errors(ENGINE):
            if "error" in outcome:
                raise outcome["error"]
            result = check(outcome["response"], ENGINE).json()
        images = [
            self.store.put(job.spec.job_id, f"image-{i}.png", base64.b64decode(data), "image/png")
            for i, data in enumerate(result.get("images", []))
        ]
        return {
            "images": [{"url": url} for url in images],
            "parameters": result.get("parameters"),
            "info": result.get("info"),
        }

    def _report_progress(self, job: JobContext) -> None:
        try:
            state = self.session.get(
                f"{self.base_url}/sdapi/v1/progress", params={"skip_current_image": "true"}, timeout=5
            ).json()
        except (requests.RequestException, ValueError):
            return  # progress is best effort; the generation itself decides the outcome
        steps = state.get("state") or {}
        stage = f"step {steps.get('sampling_step', 0)}/{steps.get('sampling_steps', 0)}" if steps else ""
        job.report_progress(min(99, int(100 * float(state.get("progress") or 0))), stage)

    def _interrupt(self) -> None:
        with contextlib.suppress(requests.RequestException):  # abandoned either way
            self.session.post(f"{self.base_url}/sdapi/v1/interrupt", timeout=5)
