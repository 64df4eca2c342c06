"""Local processes of the demo (and of the tests and benchmarks): free ports, stopping children."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from typing import Any

__all__ = ["free_port", "stop_process"]


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(
    proc: subprocess.Popen[Any] | None, *, grace: float = 20.0, group: bool = False
) -> None:
    """SIGTERM ``proc``, wait up to ``grace`` seconds, then SIGKILL it and wait.

    Parameters
    ----------
    proc : subprocess.Popen, optional
        The child (nothing happens for ``None``).
    grace : float
        Seconds between SIGTERM and SIGKILL; 0 kills at once (a crash).
    group : bool
        ``proc`` leads its own process group (``start_new_session``): SIGKILL goes to the whole
        group, and once more at the end for grandchildren a dead leader left behind.
    """
    if proc is None:
        return
    if proc.poll() is None:
        if grace > 0:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace if grace > 0 else 0.0)
        except subprocess.TimeoutExpired:
            _kill(proc, group)
            proc.wait()
    if group:
        _kill(proc, group)


def _kill(proc: subprocess.Popen[Any], group: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
