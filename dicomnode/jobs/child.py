"""The inference child process: loads sources, runs a pipeline, encodes and writes results.

One long-lived child per worker (``multiprocessing`` spawn), so pipeline instances and their
models stay loaded between jobs, and a crash, ``os._exit`` or CUDA out-of-memory in a model
ends only the child: the worker fails the job (to be retried) and starts a new child. torch is
imported here (by pipelines and device selection), never in the node's main process.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import tempfile
import traceback
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

__all__ = ["READY", "ChildOutcome", "JobSpec", "OutcomeKind", "child_main"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSpec:
    """Everything the child needs for one job (picklable, no DB access in the child).

    Parameters
    ----------
    job_id : int
        The job.
    pipeline : str
        Pipeline name (registry key).
    class_paths : dict
        ``name -> "module:Class"`` from the config (the registry's extra plugins).
    options : dict
        The pipeline's config section.
    study_uid : str
        The study of every input.
    inputs : list of dict
        ``{series_uid, files, modality, description, role}`` per input series.
    outputs : list of str
        Output kinds to encode.
    uid_root : str
        Root of result UIDs.
    results_dir : str
        Absolute directory to write the result files to (``<data_dir>/results/<job>``).
    predecessors : list of tuple
        ``(study, series, sop_class, sop_instance)`` of the results this run replaces.
    device : str
        ``workers.device``.
    check_only : bool
        Only load the pipeline and run its ``check`` (no inputs: only load it); the outcome
        carries the pipeline's version and default outputs.
    """

    job_id: int
    pipeline: str
    class_paths: dict[str, str]
    options: dict[str, Any]
    study_uid: str
    inputs: list[dict[str, Any]]
    outputs: list[str]
    uid_root: str
    results_dir: str
    predecessors: list[tuple[str, str, str, str]] = field(default_factory=list)
    device: str = "auto"
    check_only: bool = False


class OutcomeKind:
    """Kinds of :class:`ChildOutcome`."""

    OK = "ok"
    REFUSED = "refused"
    ERROR = "error"


@dataclass(frozen=True)
class ChildOutcome:
    """What the child answers for one job.

    ``results`` holds ``(sop_instance_uid, sop_class_uid, series_uid, study_uid, file name)``;
    ``restart`` asks the worker for a fresh child (after out-of-memory); ``version`` and
    ``default_outputs`` describe the pipeline (answers to ``check_only`` specs).
    """

    kind: str
    results: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    error: str = ""
    restart: bool = False
    version: str = ""
    default_outputs: tuple[str, ...] = ()


def _die_with_parent() -> None:
    """Linux: be killed when the worker thread that started us goes away."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class _Runner:
    """Pipeline instances by name, kept for the life of the child."""

    def __init__(self) -> None:
        self._pipelines: dict[str, Any] = {}
        self._device: str | None = None

    def device(self, requested: str) -> str:
        if self._device is None:
            from dicomnode.pipeline.runtime import resolve_device

            self._device = resolve_device(requested)
        return self._device

    def pipeline(self, spec: JobSpec) -> Any:
        if spec.pipeline not in self._pipelines:
            from dicomnode.pipeline.registry import PipelineRegistry

            cls = PipelineRegistry(spec.class_paths).get(spec.pipeline)
            self._pipelines[spec.pipeline] = cls(spec.options)
        return self._pipelines[spec.pipeline]

    def run(self, spec: JobSpec) -> ChildOutcome:
        import pydicom

        from dicomnode.pipeline import InputRefused, PipelineInputs, RunContext, SeriesInput
        from dicomnode.results import Algorithm, Predecessor, encode

        pipeline = self.pipeline(spec)
        if spec.check_only and not spec.inputs:
            return _described(pipeline, OutcomeKind.OK)
        series = tuple(
            SeriesInput(
                study_uid=spec.study_uid,
                series_uid=item["series_uid"],
                files=tuple(Path(p) for p in item["files"]),
                modality=item.get("modality"),
                description=item.get("description"),
                role=item.get("role"),
            )
            for item in spec.inputs
        )
        inputs = PipelineInputs(spec.study_uid, series)
        if spec.check_only:
            try:
                pipeline.check(inputs)
            except InputRefused as exc:
                return _described(pipeline, OutcomeKind.REFUSED, exc.reason)
            return _described(pipeline, OutcomeKind.OK)
        work = Path(tempfile.mkdtemp(prefix=f"dicomnode-job{spec.job_id}-"))
        try:
            pipeline.check(inputs)
            ctx = RunContext(
                device=self.device(spec.device),
                work_dir=work,
                options=spec.options,
                log=logging.getLogger(f"dicomnode.pipeline.{spec.pipeline}"),
            )
            result = pipeline.run(inputs, ctx)
        except InputRefused as exc:
            return ChildOutcome(OutcomeKind.REFUSED, error=exc.reason)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        sources = [pydicom.dcmread(path) for path in inputs.files]
        datasets = encode(
            result.findings,
            sources,
            algorithm=Algorithm(pipeline.name, pipeline.version, result.model_sha256),
            outputs=spec.outputs,
            uid_root=spec.uid_root,
            predecessor=[Predecessor(*p) for p in spec.predecessors] or None,
        )
        return ChildOutcome(OutcomeKind.OK, results=_write(datasets, Path(spec.results_dir)))


def _described(pipeline: Any, kind: str, error: str = "") -> ChildOutcome:
    return ChildOutcome(
        kind,
        error=error,
        version=str(pipeline.version),
        default_outputs=tuple(str(o) for o in pipeline.default_outputs),
    )


def _write(datasets: list[Any], directory: Path) -> list[tuple[str, str, str, str, str]]:
    """Write each dataset durably as ``<SOPInstanceUID>.dcm`` (tmp, fsync, rename)."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for ds in datasets:
        name = f"{ds.SOPInstanceUID}.dcm"
        tmp = directory / f".{name}.tmp"
        ds.save_as(tmp, enforce_file_format=True)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, directory / name)
        out.append(
            (
                str(ds.SOPInstanceUID),
                str(ds.SOPClassUID),
                str(ds.SeriesInstanceUID),
                str(ds.StudyInstanceUID),
                name,
            )
        )
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return out


def _scrubbed(spec: JobSpec, text: str) -> str:
    """``text`` without the identifiers of the job's input study (headers read only now)."""
    from dicomnode.phi import PatientIdentifiers, redact

    files = [path for item in spec.inputs for path in item.get("files", ())]
    return redact(text.strip(), PatientIdentifiers.from_files(files))


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__


#: First message of a child: its imports are done and it takes jobs.
READY = "ready"


def _preload() -> None:
    """Import the readers and encoders now, so a job's time is the job's own."""
    import pydicom  # noqa: F401

    import dicomnode.pipeline  # noqa: F401
    import dicomnode.results.outputs  # noqa: F401


def child_main(conn: Connection, log_level: int = logging.INFO) -> None:
    """Serve jobs from ``conn`` until it closes (the child process's target)."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when we stop
    logging.basicConfig(level=log_level, format="%(asctime)s child %(levelname)s %(message)s")
    runner = _Runner()
    _preload()
    try:
        conn.send(READY)
    except (BrokenPipeError, OSError):
        return
    while True:
        try:
            spec = conn.recv()
        except (EOFError, OSError):
            return
        if spec is None:
            return
        try:
            outcome = runner.run(spec)
        except BaseException as exc:  # report every failure of a model to the worker
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            detail = _scrubbed(spec, "".join(traceback.format_exception_only(type(exc), exc)))
            log.error("job %s failed: %s", spec.job_id, detail)
            outcome = ChildOutcome(OutcomeKind.ERROR, error=detail[:2000], restart=_is_oom(exc))
        else:
            if outcome.error:
                outcome = replace(outcome, error=_scrubbed(spec, outcome.error))
        try:
            conn.send(outcome)
        except (BrokenPipeError, OSError):
            return
