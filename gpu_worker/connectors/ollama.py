"""Ollama's native API: `/api/generate` and `/api/chat`, streamed as newline-delimited JSON.

Job payload: {"endpoint": "generate" (default) | "chat", "body": {"model": ..., "prompt" | "messages": ...}}.
Configured by OLLAMA_URL (default http://127.0.0.1:11434).
"""

from __future__ import annotations

import json

from gpu_worker.connectors.base import JobContext, PermanentError
from gpu_worker.connectors.engine_http import EngineConnector, check, engine_errors, timeout_for
from wire.json_types import JsonObject

ENGINE = "ollama"


class OllamaConnector(EngineConnector):
    name = "ollama"
    job_types = ("ollama",)

    engine = ENGINE
    url_variable = "OLLAMA_URL"
    default_url = "http://127.0.0.1:11434"
    health_path = "/api/tags"

    def run(self, job: JobContext) -> JsonObject:
        endpoint = job.payload.get("endpoint", "generate")
        body = job.payload.get("body")
        if endpoint not in ("generate", "chat") or not isinstance(body, dict):
            raise PermanentError(
                "payload needs endpoint generate or chat, and a body object", code="INVALID_PAYLOAD"
            )
        budget = (body.get("options") or {}).get("num_predict")
        parts: list[str] = []
        final: JsonObject = {}
        with engine_errors(ENGINE):
            response = check(
                self.session.post(
                    f"{self.base_url}/api/{endpoint}",
                    json={**body, "stream": True},
                    timeout=timeout_for(job),
                    stream=True,
                ),
                ENGINE,
            )
            with response:
                for count, line in enumerate(response.iter_lines(), start=1):
                    job.checkpoint()  # closing the stream makes Ollama stop generating
                    if not line:
                        continue
                    chunk = json.loads(line)
                    if "error" in chunk:
                        raise PermanentError(f"ollama: {chunk['error']}", code="OLLAMA_ERROR")
                    parts.append(chunk.get("response") or (chunk.get("message") or {}).get("content") or "")
                    if chunk.get("done"):
                        final = {k: v for k, v in chunk.items() if k not in ("response", "message")}
                        break
                    percent = (
                        min(99, int(100 * count / budget))
                        if isinstance(budget, int) and budget > 0
                        else min(99, count)
                    )
                    job.report_progress(percent, f"{count} tokens")
        return {"text": "".join(parts), **final}
