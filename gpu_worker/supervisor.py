"""One `python -m gpu_worker` per machine: a worker process per GPU (or several), each pinned to its
GPU with CUDA_VISIBLE_DEVICES, restarted when it exits (code 75: it shed a stuck job), and stopped
together on SIGTERM (each finishes or hands back its current job first)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from gpu_worker.config import SUPERVISED_ENV, WorkerConfig

logger = logging.getLogger("gpu_worker.supervisor")

EXIT_CREDENTIAL_REFUSED = 77  # EX_NOPERM: its credential was revoked or refused; a restart cannot help
RESTART_DELAY_S = 1.0  # after an unexpected exit; a worker that asked for a restart (75) gets none
POLL_S = 0.2
_OWN_FLAGS = ("--worker-id", "--gpu-index", "--metrics-port")  # set per child
_SECRET_FLAGS = ("--broker-url", "--join-token")  # passed in the child's environment: `ps` shows argv


def child_ids(config: WorkerConfig) -> list[tuple[str, int]]:
    """(worker id, GPU index) of each worker process: `<machine>-gpu<i>`, `-<k>` when several share one."""
    per_gpu = config.worker_slots_by_gpu.count(config.worker_slots_by_gpu[0])
    seen: dict[int, int] = {}
    ids = []
    for index in config.worker_slots_by_gpu:
        k = seen[index] = seen.get(index, -1) + 1
        ids.append((f"{config.machine_id}-gpu{index}" + (f"-{k}" if per_gpu > 1 else ""), index))
    return ids


def run_supervisor(argv: list[str], config: WorkerConfig) -> int:
    base_argv = _without_flags(argv, (*_OWN_FLAGS, *_SECRET_FLAGS))
    children: dict[str, subprocess.Popen[bytes]] = {}
    order = [child_id for child_id, _ in child_ids(config)]  # a worker's metrics port: the first + its place
    stopping = False

    def start(worker_id: str, gpu_index: int) -> None:
        env = {
            **os.environ,
            "BROKER_URL": config.broker_url,
            "WORKER_JOIN_TOKEN": config.join_token,
            "CUDA_VISIBLE_DEVICES": str(gpu_index),
            SUPERVISED_ENV: "1",
        }
        command = [sys.executable, "-m", "gpu_worker", *base_argv, "--worker-id", worker_id]
        command += ["--gpu-index", str(gpu_index)]
        if config.metrics_port:
            command += ["--metrics-port", str(config.metrics_port + order.index(worker_id))]
        children[worker_id] = subprocess.Popen(command, env=env)
        logger.info("started worker %s on GPU %s (pid %s)", worker_id, gpu_index, children[worker_id].pid)

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:  # a second signal: do not wait any longer
            for child in children.values():
                child.kill()
            return
        stopping = True
        logger.info("stopping %d workers (each finishes or hands back its current job)", len(children))
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    layout = child_ids(config)
    for worker_id, gpu_index in layout:
        start(worker_id, gpu_index)
    gpu_of = dict(layout)
    while True:
        if stopping and all(child.poll() is not None for child in children.values()):
            return 0
        for worker_id, child in list(children.items()):
            code = child.poll()
            if code is None or stopping:
                continue
            if code == EXIT_CREDENTIAL_REFUSED:
                logger.error("worker %s was cut off from the fleet; not restarting it", worker_id)
                del children[worker_id]
                if not children:
                    return code
                continue
            logger.warning("worker %s exited with code %s; restarting it", worker_id, code)
            if code != 75:
                time.sleep(RESTART_DELAY_S)
            start(worker_id, gpu_of[worker_id])
        time.sleep(POLL_S)


def _without_flags(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in flags:
            skip = True
            continue
        if arg.split("=", 1)[0] in flags:
            continue
        kept.append(arg)
    return kept
