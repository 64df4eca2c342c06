"""A spawned pipeline child and the pipe to it (used by the workers and the checker).

:class:`ChildDied` is an internal signal between this module and its two users, the worker
and the checker; it never leaves :mod:`dicomnode.jobs`.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from dicomnode.jobs.child import child_main
from dicomnode.jobs.messages import READY, Outcome, Request
from dicomnode.logs import inherited_config

__all__ = ["ChildDied", "ChildProcess"]

log = logging.getLogger(__name__)

#: Seconds a child may take to import what it needs before it answers :data:`READY`.
STARTUP_SECONDS = 120.0


class ChildDied(Exception):  # noqa: N818 - internal signal, never leaves dicomnode.jobs
    """The child exited while answering a request (or could not start).

    ``starting`` is true when it never became ready: the request itself is not to blame.
    """

    def __init__(self, exitcode: int | None, message: str | None = None, *, starting: bool = False):
        self.exitcode = exitcode
        self.starting = starting
        super().__init__(message or f"inference process died (exit code {exitcode})")


class ChildProcess:
    """A spawned pipeline child, started on the first request (or :meth:`ensure`).

    Parameters
    ----------
    name : str
        Process name (``ps``, logs).
    encoders : bool
        Whether the child imports the result encoders at start-up (a worker's child does,
        the checker's does not).
    startup_seconds : float
        Seconds the child may take to become ready.
    """

    def __init__(
        self,
        *,
        name: str = "dicomnode-inference",
        encoders: bool = True,
        startup_seconds: float = STARTUP_SECONDS,
    ) -> None:
        self.name = name
        self.encoders = encoders
        self.startup_seconds = startup_seconds
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._ready = False
        self._started = 0.0
        #: ``time.monotonic()`` of the last answer (or of the start): for ``workers.keep_warm``.
        self.last_used = 0.0

    @property
    def alive(self) -> bool:
        """Whether a child runs."""
        return self._proc is not None and self._proc.is_alive()

    @property
    def ready(self) -> bool:
        """Whether the child has answered :data:`READY` (its imports are done)."""
        return self._ready

    @property
    def pid(self) -> int | None:
        """Process id of the child, if started."""
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        """Spawn the child unless it runs; returns at once (it answers :data:`READY` later)."""
        if self.alive:
            return
        self.stop()
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=child_main,
            args=(child, inherited_config(), self.encoders),
            daemon=True,
            name=self.name,
        )
        proc.start()
        child.close()
        self._proc, self._conn, self._ready = proc, parent, False
        self._started = self.last_used = time.monotonic()
        log.debug("%s started (pid %s)", self.name, proc.pid)

    def ensure(self) -> None:
        """Start the child unless it runs, and wait until it is ready.

        Raises
        ------
        ChildDied
            It exited or was not ready within ``startup_seconds``.
        """
        self.start()
        while not self._ready:
            if self.wait(0.5) is not None:
                raise AssertionError("an answer before any request")

    def submit(self, request: Request) -> None:
        """Send one request to the child (started now unless it runs)."""
        self.start()
        assert self._conn is not None
        self._conn.send(request)

    def wait(self, timeout: float) -> Outcome | None:
        """The child's answer, or None when none came within ``timeout``.

        Raises
        ------
        ChildDied
            The child exited without answering, or did not become ready in time.
        """
        assert self._conn is not None and self._proc is not None
        deadline = time.monotonic() + timeout
        try:
            while self._conn.poll(max(0.0, deadline - time.monotonic())):
                message = self._conn.recv()
                if message == READY:
                    self._ready = True
                    continue
                self.last_used = time.monotonic()
                return message  # type: ignore[no-any-return]
        except (EOFError, OSError):
            pass
        else:
            if self._proc.is_alive():
                if not self._ready and time.monotonic() - self._started > self.startup_seconds:
                    self.stop()
                    raise ChildDied(
                        None,
                        f"{self.name} not ready after {self.startup_seconds:g} s",
                        starting=True,
                    )
                return None
        self._proc.join(5)
        exitcode, ready = self._proc.exitcode, self._ready
        if not ready:
            self.stop()
            raise ChildDied(
                exitcode, f"{self.name} failed to start (exit code {exitcode})", starting=True
            )
        raise ChildDied(exitcode)

    def stop(self, *, grace: float = 0.0) -> None:
        """End the child (if any) and close the pipe.

        Parameters
        ----------
        grace : float
            Seconds the child gets to exit by itself after being told to (0: killed at once).
        """
        if self._conn is not None:
            if grace > 0 and self.alive:
                try:
                    self._conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
                else:
                    assert self._proc is not None
                    self._proc.join(grace)
            self._conn.close()
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        self._proc = self._conn = None
        self._ready = False
