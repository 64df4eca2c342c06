"""One job, one way: check, run, read the sources, encode, write (``dicomnode run`` and workers).

:func:`execute` is the only place where a pipeline's findings become result files: the worker's
inference child calls it for a queued job, :func:`dicomnode.pipeline.runner.run_on_files` for
each series or study of ``dicomnode run``. :func:`choose_outputs` is the one rule that decides
which result objects a job makes.

Light at import time (pydicom, the encoders and torch are imported when a job runs), so the
node's main process and the checker child can import it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomnode.pipeline.contract import InputRefused, Pipeline, PipelineInputs, RunContext
from dicomnode.results.findings import Findings
from dicomnode.results.kinds import DEFAULT_OUTPUTS, OutputKind

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = ["Execution", "ResultFile", "choose_outputs", "execute", "write_results"]

log = logging.getLogger(__name__)

#: ``(study, series, SOP class, SOP instance)`` of a result that a new run replaces.
PredecessorKey = tuple[str, str, str, str]


def choose_outputs(
    requested: Iterable[OutputKind | str] | None,
    configured: Iterable[OutputKind | str] | None,
    defaults: Iterable[OutputKind | str] | None,
) -> tuple[OutputKind, ...]:
    """The output kinds of a job: the first choice that is given.

    Parameters
    ----------
    requested : iterable, optional
        What the route (``routes[].outputs``) or the command line (``--outputs``) asks for.
    configured : iterable, optional
        ``pipelines.<name>.outputs`` when the config sets it
        (:attr:`~dicomnode.config.schema.PipelineConfig.chosen_outputs`).
    defaults : iterable, optional
        The pipeline's :attr:`~dicomnode.pipeline.Pipeline.default_outputs`; when unknown (the
        pipeline could not be loaded), :data:`~dicomnode.results.DEFAULT_OUTPUTS`.

    Raises
    ------
    ValueError
        A kind that is not ``sr``, ``seg`` or ``summary``.
    """
    if requested is not None:
        return _kinds(requested)
    if configured is not None:
        return _kinds(configured)
    return _kinds(defaults or ()) or DEFAULT_OUTPUTS


def _kinds(choice: Iterable[OutputKind | str]) -> tuple[OutputKind, ...]:
    try:
        return tuple(dict.fromkeys(OutputKind(kind) for kind in choice))
    except ValueError as exc:
        allowed = ", ".join(kind.value for kind in OutputKind)
        raise ValueError(f"outputs must be among {allowed}: {exc}") from None


@dataclass(frozen=True)
class ResultFile:
    """One result object written by :func:`execute`.

    Attributes
    ----------
    sop_instance_uid, sop_class_uid, series_uid, study_uid : str
        Identity of the object.
    name : str
        File name in the output directory (``<SOPInstanceUID>.dcm``).
    """

    sop_instance_uid: str
    sop_class_uid: str
    series_uid: str
    study_uid: str
    name: str


@dataclass(frozen=True)
class Execution:
    """What :func:`execute` did: result files and findings, or the pipeline's refusal."""

    files: tuple[ResultFile, ...] = ()
    findings: Findings | None = None
    refused: str | None = None
    seconds: float = 0.0


def write_results(datasets: Sequence[Dataset], directory: Path) -> tuple[ResultFile, ...]:
    """Write each dataset durably as ``<SOPInstanceUID>.dcm`` (tmp, fsync, rename, fsync dir)."""
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
            ResultFile(
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
    return tuple(out)


def execute(
    pipeline: Pipeline,
    inputs: PipelineInputs,
    out_dir: Path,
    *,
    device: str,
    outputs: Iterable[OutputKind | str],
    options: Mapping[str, Any] | None = None,
    uid_root: str = "2.25",
    predecessors: Sequence[PredecessorKey] = (),
    logger: logging.Logger | None = None,
) -> Execution:
    """Check and run ``pipeline`` on ``inputs``, encode its findings and write them.

    Parameters
    ----------
    pipeline : Pipeline
        A pipeline instance (kept by the caller between jobs, with its model).
    inputs : PipelineInputs
        The series (or study) of the job.
    out_dir : Path
        Receives one ``<SOPInstanceUID>.dcm`` per result object, written durably; created
        when missing.
    device : str
        Resolved torch device (:func:`dicomnode.pipeline.runtime.resolve_device`).
    outputs : iterable of OutputKind or str
        Result objects to make (see :func:`choose_outputs`).
    options : mapping, optional
        The pipeline's config section (``RunContext.options``).
    uid_root : str
        Root of the result UIDs (``node.uid_root``).
    predecessors : sequence of tuple
        ``(study, series, SOP class, SOP instance)`` of the results this run replaces.
    logger : logging.Logger, optional
        The pipeline's logger (default ``dicomnode.pipeline.<name>``).

    Returns
    -------
    Execution
        The files and findings, or the refusal (:class:`InputRefused` from ``check`` or
        ``run``); any other exception of the pipeline or the encoders propagates.
    """
    from pydicom import dcmread

    from dicomnode.results.common import Algorithm, Predecessor
    from dicomnode.results.outputs import encode

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f"dicomnode-{pipeline.name}-"))
    try:
        pipeline.check(inputs)
        ctx = RunContext(
            device=device,
            work_dir=work,
            options=dict(options or {}),
            log=logger or logging.getLogger(f"dicomnode.pipeline.{pipeline.name}"),
        )
        result = pipeline.run(inputs, ctx)
    except InputRefused as exc:
        return Execution(refused=exc.reason, seconds=time.monotonic() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sources = [dcmread(path) for path in inputs.files]
    datasets = encode(
        result.findings,
        sources,
        algorithm=Algorithm(pipeline.name, pipeline.version, result.model_sha256),
        outputs=outputs,
        uid_root=uid_root,
        predecessor=[Predecessor(*p) for p in predecessors] or None,
    )
    del sources
    files = write_results(datasets, Path(out_dir))
    return Execution(files, result.findings, seconds=time.monotonic() - started)
