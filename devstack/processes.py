"""Stopping child processes: a signal, a grace period, then SIGKILL (runstack, embedded servers, tests,
benchmarks)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterable

STOP_TIMEOUT_SECONDS = 20.0


def stop_process(
    process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_SECONDS
) -> None:
    """Ask the process to stop with `sig`; kill it if it is still running `timeout` seconds later."""
    stop_processes([process] if process is not None else [], sig, timeout)


def stop_processes(
    processes: Iterable[subprocess.Popen[bytes]],
    sig: int = signal.SIGTERM,
    timeout: float = STOP_TIMEOUT_SECONDS,
) -> None:
    """Signal every running process at once, then give them `timeout` seconds in all to exit (in the
    order given) before killing the rest."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.send_signal(sig)
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
