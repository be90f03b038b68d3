"""OpenAI-compatible HTTP APIs (OpenAI, vLLM, Ollama's /v1, LM Studio, ...): chat completions,
completions, responses, embeddings and image generation, streaming progress where the server streams.

Job payload: {"endpoint": "chat/completions" (default) | "completions" | "responses" | "embeddings" |
"images/generations", "body": {...the API's request body...}}. Configured by OPENAI_BASE_URL
(default https://api.openai.com/v1) and OPENAI_API_KEY (sent as a bearer token, never logged).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator

import requests

from gpu_worker.artifacts import ArtifactStore
from gpu_worker.connectors.base import JobContext, PermanentError
from gpu_worker.connectors.engine_http import EngineConnector, check, engine_errors, timeout_for
from wire.json_types import JsonObject, JsonValue

ENGINE = "openai"
ENDPOINTS = ("chat/completions", "completions", "responses", "embeddings", "images/generations")
STREAMING_ENDPOINTS = ("chat/completions", "completions", "responses")


class OpenAIConnector(EngineConnector):
    name = "openai"
    job_types = ("openai", "llm")

    engine = ENGINE
    url_variable = "OPENAI_BASE_URL"
    default_url = "https://api.openai.com/v1"
    health_path = "/models"

    def __init__(
        self, base_url: str | None = None, api_key: str | None = None, store: ArtifactStore | None = None
    ) -> None:
        super().__init__(base_url, store)
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        if key:
            self.session.headers["authorization"] = f"Bearer {key}"

    def run(self, job: JobContext) -> JsonValue:
        endpoint = job.payload.get("endpoint", "chat/completions")
        body = job.payload.get("body")
        if endpoint not in ENDPOINTS or not isinstance(body, dict):
            raise PermanentError(
                f"payload needs endpoint (one of {ENDPOINTS}) and a body object", code="INVALID_PAYLOAD"
            )
        streaming = bool(body.get("stream")) and endpoint in STREAMING_ENDPOINTS
        with engine_errors(ENGINE):
            response = self.session.post(
                f"{self.base_url}/{endpoint}", json=body, timeout=timeout_for(job), stream=streaming
            )
            check(response, ENGINE)
            if streaming:
                with response:
                    return _collect_stream(job, endpoint, _sse_events(response), _token_budget(body))
            result = response.json()
        if endpoint == "images/generations":
            return self._store_images(job, result)
        return result

    def _store_images(self, job: JobContext, result: JsonObject) -> JsonObject:
        for index, image in enumerate(result.get("data", [])):
            if "b64_json" in image:
                data = base64.b64decode(image.pop("b64_json"))
                image["url"] = self.store.put(job.spec.job_id, f"image-{index}.png", data, "image/png")
        return result


def _sse_events(response: requests.Response) -> Iterator[JsonObject]:
    """Server-sent events' JSON payloads, until `[DONE]` or the end of the stream."""
    for line in response.iter_lines(decode_unicode=True):
        if not line or not line.startswith("data:"):
            continue
        data = line.removeprefix("data:").strip()
        if data == "[DONE]":
            return
        yield json.loads(data)


def _token_budget(body: JsonObject) -> int | None:
    for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = body.get(name)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _collect_stream(
    job: JobContext, endpoint: str, events: Iterator[JsonObject], budget: int | None
) -> JsonObject:
    """Join the streamed text, reporting progress per chunk (against the token budget when known)."""
    parts: list[str] = []
    final: JsonObject = {}
    for chunks, event in enumerate(events, start=1):
        job.checkpoint()  # a cancelled or timed-out job stops reading; closing the stream stops the server
        if endpoint == "responses":
            if event.get("type") == "response.output_text.delta":
                parts.append(event.get("delta", ""))
            elif event.get("type") == "response.completed":
                final = event.get("response", {})
            elif event.get("type") in ("response.failed", "error"):
                raise PermanentError(
                    f"the server reported: {json.dumps(event)[:500]}", code="OPENAI_STREAM_ERROR"
                )
        else:
            for choice in event.get("choices", []):
                parts.append((choice.get("delta") or {}).get("content") or choice.get("text") or "")
                if choice.get("finish_reason"):
                    final["finish_reason"] = choice["finish_reason"]
            final.update({k: event[k] for k in ("id", "model", "usage") if event.get(k)})
        percent = min(99, int(100 * chunks / budget)) if budget else min(99, chunks)
        job.report_progress(percent, f"{chunks} chunks")
    return {"text": "".join(parts), **final}
