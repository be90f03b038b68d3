"""A fake AUTOMATIC1111 web UI API: a txt2img/img2img request that takes `steps x step_seconds`,
/sdapi/v1/progress while it runs, /sdapi/v1/interrupt to stop it early."""

from __future__ import annotations

import asyncio
import base64
import json

from tests.engines.server import read_body, respond


class FakeA1111:
    def __init__(self) -> None:
        self.step, self.steps = 0, 0
        self.interrupts = 0
        self._interrupt = asyncio.Event()

    async def __call__(self, scope, receive, send) -> None:
        path = scope["path"]
        if path == "/sdapi/v1/progress":
            progress = self.step / self.steps if self.steps else 0.0
            state = {"sampling_step": self.step, "sampling_steps": self.steps, "interrupted": False}
            await respond(
                send, 200, json.dumps({"progress": progress, "eta_relative": 1.0, "state": state}).encode()
            )
        elif path == "/sdapi/v1/interrupt":
            self.interrupts += 1
            self._interrupt.set()
            await respond(send, 200, b"{}")
        elif path in ("/sdapi/v1/txt2img", "/sdapi/v1/img2img"):
            params = json.loads(await read_body(receive))
            if params.get("sampler_name") == "NoSuchSampler":
                await respond(send, 422, b'{"detail": "Sampler not found"}')
                return
            self._interrupt.clear()
            self.step, self.steps = 0, int(params.get("steps", 5))
            for _ in range(self.steps):
                if self._interrupt.is_set():
                    break
                await asyncio.sleep(float(params.get("step_seconds", 0.1)))
                self.step += 1
            images = [base64.b64encode(b"\x89PNG\r\n\x1a\nimage").decode()] * int(params.get("batch_size", 1))
            await respond(
                send, 200, json.dumps({"images": images, "parameters": params, "info": "{}"}).encode()
            )
        else:
            await respond(send, 404, b"{}")
