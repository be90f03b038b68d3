"""Fake OpenAI-compatible and Ollama servers: JSON answers, SSE and NDJSON streams (with a delay
per chunk, so progress and cancel can be watched), and errors on request."""

from __future__ import annotations

import asyncio
import base64
import json

from tests.engines.server import read_body, respond


async def _stream(send, content_type: str, chunks: list[bytes], delay: float) -> bool:
    """Send chunks one by one; False when the client went away first."""
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type.encode())]}
    )
    for chunk in chunks:
        await asyncio.sleep(delay)
        try:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except OSError:
            return False
    await send({"type": "http.response.body", "body": b""})
    return True


class FakeOpenAI:
    """Words of the reply come one per chunk; "fail:<status>" as the model answers that status."""

    def __init__(self, words: int = 5, delay: float = 0.01) -> None:
        self.words, self.delay = words, delay
        self.requests: list[dict] = []
        self.finished_streams = 0

    async def __call__(self, scope, receive, send) -> None:
        path = scope["path"]
        if scope["method"] == "GET" and path == "/v1/models":
            await respond(send, 200, b'{"data": [{"id": "fake-model"}]}')
            return
        body = json.loads(await read_body(receive) or b"{}")
        self.requests.append({"path": path, "body": body, "headers": dict(scope["headers"])})
        model = body.get("model", "")
        if model.startswith("fail:"):
            status = int(model.removeprefix("fail:"))
            await respond(
                send, status, json.dumps({"error": {"message": f"scripted {status}", "type": "x"}}).encode()
            )
            return
        words = [f"w{i} " for i in range(self.words)]
        if path == "/v1/chat/completions" and body.get("stream"):
            chunks = [
                f"data: {json.dumps({'id': 'c1', 'model': model, 'choices': [{'delta': {'content': w}, 'finish_reason': None}]})}\n\n".encode()
                for w in words
            ]
            chunks.append(
                f"data: {json.dumps({'id': 'c1', 'model': model, 'choices': [{'delta': {}, 'finish_reason': 'stop'}]})}\n\n".encode()
            )
            chunks.append(b"data: [DONE]\n\n")
            self.finished_streams += await _stream(send, "text/event-stream", chunks, self.delay)
        elif path == "/v1/responses" and body.get("stream"):
            chunks = [
                f"event: response.output_text.delta\ndata: {json.dumps({'type': 'response.output_text.delta', 'delta': w})}\n\n".encode()
                for w in words
            ]
            done = {
                "type": "response.completed",
                "response": {"id": "r1", "status": "completed", "model": model},
            }
            chunks.append(f"event: response.completed\ndata: {json.dumps(done)}\n\n".encode())
            self.finished_streams += await _stream(send, "text/event-stream", chunks, self.delay)
        elif path == "/v1/chat/completions":
            reply = {
                "id": "c1",
                "model": model,
                "choices": [
                    {"message": {"role": "assistant", "content": "".join(words)}, "finish_reason": "stop"}
                ],
                "usage": {"completion_tokens": self.words},
            }
            await respond(send, 200, json.dumps(reply).encode())
        elif path == "/v1/images/generations":
            png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
            await respond(send, 200, json.dumps({"created": 1, "data": [{"b64_json": png}]}).encode())
        else:
            await respond(send, 404, b'{"error": {"message": "unknown path"}}')


class FakeOllama:
    def __init__(self, words: int = 5, delay: float = 0.01) -> None:
        self.words, self.delay = words, delay
        self.finished_streams = 0

    async def __call__(self, scope, receive, send) -> None:
        path = scope["path"]
        if path == "/api/tags":
            await respond(send, 200, b'{"models": [{"name": "llama3"}]}')
            return
        body = json.loads(await read_body(receive) or b"{}")
        if body.get("model") == "missing":
            await respond(send, 404, b'{"error": "model \\"missing\\" not found, try pulling it first"}')
            return
        key = "message" if path == "/api/chat" else "response"
        lines = []
        for i in range(self.words):
            piece = f"w{i} "
            lines.append(
                {
                    "model": body["model"],
                    key: {"role": "assistant", "content": piece} if key == "message" else piece,
                    "done": False,
                }
            )
        lines.append(
            {
                "model": body["model"],
                key: {"role": "assistant", "content": ""} if key == "message" else "",
                "done": True,
                "eval_count": self.words,
                "done_reason": "stop",
            }
        )
        chunks = [json.dumps(line).encode() + b"\n" for line in lines]
        self.finished_streams += await _stream(send, "application/x-ndjson", chunks, self.delay)
