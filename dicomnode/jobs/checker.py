"""Pipeline checks out of the node's main process.

The completion hook asks each route's pipeline whether it can process a series before
queuing (``Pipeline.check``) and needs its version for the idempotency key. A third-party
pipeline may import anything, and a crashing check must not take the SCP down: the
:class:`IsolatedChecker` loads pipelines and runs their checks in a long-lived child process
of its own instead (:class:`~dicomnode.jobs.messages.CheckRequest`). Pipelines import torch
only in ``run``, so that child stays light (no torch, no encoders).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from dicomnode.config.schema import Config
from dicomnode.jobs.messages import CheckOutcome, CheckRequest, OutcomeKind
from dicomnode.jobs.process import ChildDied, ChildProcess
from dicomnode.pipeline import PipelineInputs

__all__ = ["CheckResult", "IsolatedChecker"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    """A pipeline's answer: its version and default outputs, and a refusal or a problem.

    ``refused`` is the pipeline's reason for refusing the inputs; ``problem`` says why no
    answer came (pipeline unavailable, check crashed, timed out): the job is queued
    unchecked and the worker checks again.
    """

    version: str | None = None
    default_outputs: tuple[str, ...] = ()
    refused: str | None = None
    problem: str | None = None


class IsolatedChecker:
    """Runs ``Pipeline.check`` in a child process; thread-safe, one check at a time.

    Parameters
    ----------
    config : Config
        The node's config (pipelines' class paths and options).
    timeout : float
        Seconds a check may take (the pipeline's first import included); then the child is
        replaced and the job queued unchecked.
    """

    def __init__(self, config: Config, *, timeout: float = 120.0):
        self.config = config
        self.timeout = timeout
        self._child = ChildProcess(name="dicomnode-checker", encoders=False)
        self._lock = threading.Lock()
        self._class_paths = config.class_paths

    def start(self) -> None:
        """Start the child from the calling thread, which must outlive it.

        The child asks the kernel to kill it when the thread that started it ends
        (``PR_SET_PDEATHSIG``), so start it from the main thread, not a short-lived one.
        """
        with self._lock:
            self._child.ensure()

    def warm(self, names: list[str]) -> None:
        """Start the child and load the named pipelines (call off the sweep's thread)."""
        for name in names:
            result = self.check(name, None)
            if result.problem:
                log.warning("pipeline %s: %s", name, result.problem)

    def __call__(self, name: str, inputs: PipelineInputs) -> CheckResult:
        """:meth:`check` (the :data:`~dicomnode.jobs.enqueue.Checker` signature)."""
        return self.check(name, inputs)

    def check(self, name: str, inputs: PipelineInputs | None) -> CheckResult:
        """Load pipeline ``name`` in the child and check ``inputs`` (None: only load it)."""
        section = self.config.pipelines.get(name)
        request = CheckRequest(
            pipeline=name,
            class_paths=self._class_paths,
            options=dict(section.options) if section else {},
            inputs=inputs,
        )
        with self._lock:
            try:
                self._child.submit(request)
                outcome = self._child.wait(self.timeout)
            except (ChildDied, OSError) as exc:
                self._child.stop()
                return CheckResult(problem=f"check process failed: {exc}")
            if outcome is None:
                self._child.stop()
                return CheckResult(problem=f"check took more than {self.timeout:g} s")
        assert isinstance(outcome, CheckOutcome)
        if outcome.kind is OutcomeKind.ERROR:
            return CheckResult(problem=outcome.error)
        return CheckResult(
            version=outcome.version,
            default_outputs=outcome.default_outputs,
            refused=outcome.error if outcome.kind is OutcomeKind.REFUSED else None,
        )

    def close(self) -> None:
        """Stop the child."""
        with self._lock:
            self._child.stop()
