"""The pipeline child process: checks inputs or runs jobs, one request at a time.

A long-lived child (``multiprocessing`` spawn, see :mod:`dicomnode.jobs.process`) keeps its
pipeline instances, and their models, between requests; a crash, ``os._exit`` or CUDA
out-of-memory in a model ends only the child. A worker's child runs jobs through
:func:`dicomnode.pipeline.execute`; the checker's child only loads pipelines and calls their
``check``, which needs no torch: it stays a light process. torch is imported by a pipeline's
``run`` (and device selection), never in the node's main process.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import traceback
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from dicomnode.config.schema import LoggingConfig
from dicomnode.errors import PermanentError
from dicomnode.jobs.messages import (
    READY,
    CheckOutcome,
    CheckRequest,
    Outcome,
    OutcomeKind,
    Request,
    RunOutcome,
    RunRequest,
)

__all__ = ["child_main"]

log = logging.getLogger(__name__)


def _die_with_parent() -> None:
    """Linux: be killed when the thread that started us goes away."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class _Pipelines:
    """Pipeline instances by name, kept for the life of the child."""

    def __init__(self) -> None:
        self._pipelines: dict[str, Any] = {}
        self._device: str | None = None

    def device(self, requested: str) -> str:
        if self._device is None:
            from dicomnode.pipeline.runtime import resolve_device

            self._device = resolve_device(requested)
        return self._device

    def get(self, request: Request) -> Any:
        if request.pipeline not in self._pipelines:
            from dicomnode.pipeline.registry import PipelineRegistry

            cls = PipelineRegistry(request.class_paths).get(request.pipeline)
            self._pipelines[request.pipeline] = cls(request.options)
        return self._pipelines[request.pipeline]

    def check(self, request: CheckRequest) -> CheckOutcome:
        from dicomnode.pipeline import InputRefused

        pipeline = self.get(request)
        kind, reason = OutcomeKind.OK, ""
        if request.inputs is not None:
            try:
                pipeline.check(request.inputs)
            except InputRefused as exc:
                kind, reason = OutcomeKind.REFUSED, exc.reason
        return CheckOutcome(
            kind,
            error=reason,
            version=str(pipeline.version),
            default_outputs=tuple(str(o) for o in pipeline.default_outputs),
        )

    def run(self, request: RunRequest) -> RunOutcome:
        from pathlib import Path

        from dicomnode.pipeline.execute import execute

        done = execute(
            self.get(request),
            request.inputs,
            Path(request.results_dir),
            device=self.device(request.device),
            outputs=request.outputs,
            options=request.options,
            uid_root=request.uid_root,
            predecessors=request.predecessors,
        )
        if done.refused is not None:
            return RunOutcome(OutcomeKind.REFUSED, error=done.refused)
        stages = (("model_ready", done.model_ready_at), ("inference_done", done.inference_done_at))
        return RunOutcome(
            OutcomeKind.OK,
            results=done.files,
            repaired=done.repaired,
            stages=tuple((stage, at) for stage, at in stages if at is not None),
        )

    def answer(self, request: Request) -> Outcome:
        if isinstance(request, CheckRequest):
            return self.check(request)
        return self.run(request)


def _scrubbed(request: Request, text: str) -> str:
    """``text`` without the identifiers of the request's study (headers read only now)."""
    from dicomnode.phi import PatientIdentifiers, redact

    files = request.inputs.files if request.inputs is not None else ()
    return redact(text.strip(), PatientIdentifiers.from_files(list(files)))


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__


def _failed(request: Request, exc: BaseException) -> Outcome:
    detail = _scrubbed(request, "".join(traceback.format_exception_only(type(exc), exc)))
    if isinstance(request, CheckRequest):
        return CheckOutcome(OutcomeKind.ERROR, error=detail[:2000])
    log.error("job %s failed: %s", request.job_id, detail)
    return RunOutcome(
        OutcomeKind.ERROR,
        error=detail[:2000],
        restart=_is_oom(exc),
        permanent=isinstance(exc, PermanentError),
    )


def _preload(encoders: bool) -> None:
    """Import the readers (and encoders) now, so a job's time is the job's own."""
    import pydicom  # noqa: F401

    import dicomnode.pipeline  # noqa: F401

    if encoders:
        import dicomnode.results.outputs  # noqa: F401


def _answer(pipelines: _Pipelines, request: Request) -> Outcome:
    """The outcome of ``request``; what libraries log meanwhile is redacted with the
    identifiers of its input study (:func:`dicomnode.logs.job_identifiers`)."""
    from dicomnode.logs import job_identifiers

    files = request.inputs.files if request.inputs is not None else ()
    with job_identifiers(list(files)):
        return pipelines.answer(request)


def child_main(
    conn: Connection, logging_config: LoggingConfig | None = None, encoders: bool = True
) -> None:
    """Answer requests from ``conn`` until it closes or sends None (the process's target).

    ``logging_config`` is the parent's (:func:`dicomnode.logs.inherited_config`): the child
    logs to the same stream in the same format, through the same redaction. ``encoders``
    imports the result encoders before answering :data:`READY` (a worker's child); the
    checker's child does without them.
    """
    from dicomnode.logs import setup_logging

    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    setup_logging(logging_config or LoggingConfig())
    pipelines = _Pipelines()
    _preload(encoders)
    try:
        conn.send(READY)
    except (BrokenPipeError, OSError):
        return
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        try:
            outcome = _answer(pipelines, request)
        except BaseException as exc:  # report every failure of a model to the parent
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            outcome = _failed(request, exc)
        else:
            if outcome.error:
                outcome = replace(outcome, error=_scrubbed(request, outcome.error))
        try:
            conn.send(outcome)
        except (BrokenPipeError, OSError):
            return
