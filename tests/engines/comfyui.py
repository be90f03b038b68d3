"""A fake ComfyUI speaking its HTTP and WebSocket protocol: POST /prompt (400 with node_errors for an
invalid workflow), WS /ws?clientId= with `status`, `executing`, `progress`, `executed`,
`execution_error` and `execution_interrupted` messages, GET /history/{id}, GET /view, POST /interrupt,
POST /queue, GET /system_stats.

Node classes it knows: "KSampler" (inputs: steps, step_seconds) reports progress per step;
"SaveImage" makes a PNG output; "Explode" fails (inputs: oom for an out-of-memory error);
"Invalid" fails validation.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from urllib.parse import parse_qs

from tests.engines.server import read_body, respond

PNG = b"\x89PNG\r\n\x1a\n" + b"fake image bytes"


class FakeComfyUI:
    def __init__(self) -> None:
        self.sockets: dict[str, object] = {}
        self.history: dict[str, dict] = {}
        self.files: dict[str, bytes] = {}
        self.prompts: list[dict] = []
        self.interrupted: list[dict] = []
        self.deleted: list[str] = []
        self.healthy = True
        self._interrupt = asyncio.Event()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if method == "POST" and path == "/prompt":
            await self._prompt(json.loads(await read_body(receive)), send)
        elif method == "POST" and path == "/interrupt":
            self.interrupted.append(json.loads(await read_body(receive) or b"{}"))
            self._interrupt.set()
            await respond(send, 200, b"")
        elif method == "POST" and path == "/queue":
            self.deleted += json.loads(await read_body(receive)).get("delete", [])
            await respond(send, 200, b"")
        elif path.startswith("/history/"):
            prompt_id = path.removeprefix("/history/")
            body = {prompt_id: self.history[prompt_id]} if prompt_id in self.history else {}
            await respond(send, 200, json.dumps(body).encode())
        elif path == "/view":
            query = parse_qs(scope["query_string"].decode())
            name = query["filename"][0]
            await respond(send, 200, self.files[name], "image/png") if name in self.files else await respond(
                send, 404, b""
            )
        elif path == "/system_stats":
            await respond(
                send, 200 if self.healthy else 500, b'{"system": {"comfyui_version": "0.3.0"}, "devices": []}'
            )
        else:
            await respond(send, 404, b"{}")

    async def _websocket(self, scope, receive, send) -> None:
        client_id = parse_qs(scope["query_string"].decode())["clientId"][0]
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        self.sockets[client_id] = send
        await self._send(
            client_id, "status", {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id}
        )
        while (await receive())["type"] != "websocket.disconnect":
            pass
        self.sockets.pop(client_id, None)

    async def _send(self, client_id: str, kind: str, data: dict) -> None:
        send = self.sockets.get(client_id)
        if send is not None:
            await send({"type": "websocket.send", "text": json.dumps({"type": kind, "data": data})})

    async def _prompt(self, body: dict, send) -> None:
        workflow = body.get("prompt") or {}
        invalid = {
            n: {"errors": [{"message": "Value not in list"}], "class_type": v["class_type"]}
            for n, v in workflow.items()
            if v.get("class_type") == "Invalid"
        }
        if not workflow or invalid:
            error = {
                "type": "prompt_outputs_failed_validation",
                "message": "Prompt outputs failed validation",
            }
            await respond(send, 400, json.dumps({"error": error, "node_errors": invalid}).encode())
            return
        prompt_id = str(uuid.uuid4())
        self.prompts.append({"prompt_id": prompt_id, **body})
        self._interrupt.clear()
        asyncio.get_running_loop().create_task(self._execute(prompt_id, body["client_id"], workflow))
        await respond(
            send,
            200,
            json.dumps({"prompt_id": prompt_id, "number": len(self.prompts), "node_errors": {}}).encode(),
        )

    async def _execute(self, prompt_id: str, client_id: str, workflow: dict) -> None:
        await asyncio.sleep(0.05)  # the client is listening by now, as with ComfyUI's queue
        outputs: dict[str, dict] = {}
        await self._send(client_id, "execution_start", {"prompt_id": prompt_id})
        for node_id, node in workflow.items():
            inputs = node.get("inputs", {})
            await self._send(client_id, "executing", {"node": node_id, "prompt_id": prompt_id})
            if node["class_type"] == "KSampler":
                steps = int(inputs.get("steps", 4))
                for step in range(1, steps + 1):
                    await asyncio.sleep(float(inputs.get("step_seconds", 0.02)))
                    if self._interrupt.is_set():
                        await self._send(
                            client_id, "execution_interrupted", {"prompt_id": prompt_id, "node_id": node_id}
                        )
                        return
                    await self._send(
                        client_id,
                        "progress",
                        {"value": step, "max": steps, "prompt_id": prompt_id, "node": node_id},
                    )
            elif node["class_type"] == "Explode":
                message = (
                    "CUDA out of memory. Tried to allocate 2.00 GiB"
                    if inputs.get("oom")
                    else "mat1 and mat2 shapes cannot be multiplied"
                )
                await self._send(
                    client_id,
                    "execution_error",
                    {
                        "prompt_id": prompt_id,
                        "node_id": node_id,
                        "node_type": "Explode",
                        "exception_message": message,
                        "exception_type": "torch.OutOfMemoryError" if inputs.get("oom") else "RuntimeError",
                    },
                )
                return
            elif node["class_type"] == "SaveImage":
                name = f"{inputs.get('filename_prefix', 'ComfyUI')}_00001_.png"
                self.files[name] = PNG
                outputs[node_id] = {"images": [{"filename": name, "subfolder": "", "type": "output"}]}
                await self._send(
                    client_id,
                    "executed",
                    {"node": node_id, "output": outputs[node_id], "prompt_id": prompt_id},
                )
        self.history[prompt_id] = {"outputs": outputs, "status": {"status_str": "success", "completed": True}}
        await self._send(client_id, "executing", {"node": None, "prompt_id": prompt_id})
