"""One job, one way: check, run, read the sources, encode, write (``dicomnode run`` and workers).

:func:`execute` is the only place where a pipeline's findings become result files: the worker's
inference child calls it for a queued job, :func:`dicomnode.pipeline.runner.run_on_files` for
each series or study of ``dicomnode run``. :func:`choose_outputs` is the one rule that decides
which result objects a job makes.

Light at import time (pydicom, the encoders and torch are imported when a job runs), so the
node's main process and the checker child can import it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomnode.errors import PermanentError
from dicomnode.pipeline.contract import InputRefused, Pipeline, PipelineInputs, RunContext
from dicomnode.results.findings import Findings
from dicomnode.results.kinds import DEFAULT_OUTPUTS, OutputKind

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = [
    "FINDINGS_FILE",
    "Execution",
    "ResultFile",
    "ResultsIncomplete",
    "choose_outputs",
    "execute",
    "write_findings",
    "write_results",
]

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
    """What :func:`execute` did: result files and findings, or the pipeline's refusal.

    ``repaired`` names the source attributes the sanitizer changed in the copies the
    encoders read (keywords only, never values).
    """

    files: tuple[ResultFile, ...] = ()
    findings: Findings | None = None
    refused: str | None = None
    seconds: float = 0.0
    repaired: tuple[str, ...] = ()
    #: Wall-clock times (``time.time()``) at which the model was ready (after the pipeline's
    #: :meth:`~dicomnode.pipeline.Pipeline.prepare`) and its ``run`` returned.
    model_ready_at: float | None = None
    inference_done_at: float | None = None


#: The findings of every run, beside its result files (kept even when no object could be
#: made), named for the series (or, for a study-level job, the study) they are about.
FINDINGS_FILE = "findings-{subject}.json"


class ResultsIncomplete(PermanentError):
    """Some result objects could not be made from these sources; the others were written.

    Parameters
    ----------
    execution : Execution
        What was written (files, findings, repaired keywords).
    failures : dict
        Output kind → the encoder's message.
    """

    def __init__(self, execution: Execution, failures: Mapping[str, str]):
        self.execution = execution
        self.failures = dict(failures)
        made = ", ".join(f.name for f in execution.files) or "none"
        why = "; ".join(f"{kind}: {reason}" for kind, reason in self.failures.items())
        super().__init__(f"cannot make {', '.join(self.failures)} ({why}); made: {made}")


#: Which output kind an object of a Modality is.
_KIND_OF_MODALITY = {
    "SEG": str(OutputKind.SEG),
    "SR": str(OutputKind.SR),
    "OT": str(OutputKind.SUMMARY),
}

#: The order the encoders make objects in (the SR references the SEG).
_ENCODING_ORDER = (OutputKind.SEG, OutputKind.SR, OutputKind.SUMMARY)


def write_findings(findings: Findings, directory: Path, subject: str) -> Path:
    """Keep ``findings`` as JSON in ``directory`` (masks as their shape and voxel count).

    Written before any result object is encoded, so that what a pipeline found survives an
    encoder that fails on the sources.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FINDINGS_FILE.format(subject=subject)
    tmp = directory / f".{path.name}.tmp"
    tmp.write_text(json.dumps(_plain(dataclasses.asdict(findings)), indent=1, sort_keys=True))
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def _plain(value: Any) -> Any:
    """``value`` with numpy arrays and scalars made JSON-friendly."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return {"shape": list(value.shape), "nonzero": int(np.count_nonzero(value))}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


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
    from dicomnode.results.errors import EncodingError
    from dicomnode.results.outputs import encode
    from dicomnode.results.sanitize import sanitize_sources
    from dicomnode.results.validate import validate

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f"dicomnode-{pipeline.name}-"))
    try:
        pipeline.check(inputs)
        pipeline.prepare(device)
        model_ready_at = time.time()
        ctx = RunContext(
            device=device,
            work_dir=work,
            options=dict(options or {}),
            log=logger or logging.getLogger(f"dicomnode.pipeline.{pipeline.name}"),
        )
        result = pipeline.run(inputs, ctx)
        inference_done_at = time.time()
    except InputRefused as exc:
        return Execution(refused=exc.reason, seconds=time.monotonic() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = Path(out_dir)
    subject = inputs.series[0].series_uid if len(inputs.series) == 1 else inputs.study_uid
    write_findings(result.findings, out, subject)
    sanitized = sanitize_sources([dcmread(path) for path in result.sources or inputs.files])
    sanitized_keywords = sanitized.repaired
    if sanitized.repaired:
        log.warning("source attributes repaired for the results: %s", ", ".join(sanitized.repaired))

    def make(kinds: Sequence[OutputKind], sources: Sequence[Dataset]) -> list[Dataset]:
        return encode(
            result.findings,
            sources,
            algorithm=Algorithm(
                pipeline.name,
                pipeline.version,
                result.model_sha256,
                result.demo_weights,
                model_name=result.model_name,
                model_version=result.model_version,
            ),
            outputs=kinds,
            uid_root=uid_root,
            predecessor=[Predecessor(*p) for p in predecessors] or None,
        )

    wanted = [kind for kind in _ENCODING_ORDER if kind in _kinds(outputs)]
    failures: dict[str, str] = {}
    try:
        datasets = make(wanted, sanitized.datasets)
    except MemoryError:
        raise
    except Exception:  # the same sources fail the same way: find which objects can be made
        # One kind at a time: an object that cannot be made does not stop the others (the SR
        # then goes without its reference to the SEG).
        datasets = []
        for kind in wanted:
            try:
                datasets += make([kind], sanitized.datasets)
            except MemoryError:
                raise
            except EncodingError as exc:
                failures[str(kind)] = exc.message
            except Exception as exc:  # highdicom's own checks raise ValueError and others
                failures[str(kind)] = f"{type(exc).__name__}: {exc}"
    source_uids = {str(ds.SOPInstanceUID) for ds in sanitized.datasets}
    del sanitized
    valid = []
    for ds in datasets:  # checked before anything is written, so nothing invalid is sent
        problems = validate(ds, source_uids)
        if problems:
            failures[_KIND_OF_MODALITY.get(str(ds.Modality), str(ds.Modality))] = (
                "invalid: " + "; ".join(problems)
            )
        else:
            valid.append(ds)
    datasets = valid
    done = Execution(
        write_results(datasets, out),
        result.findings,
        seconds=time.monotonic() - started,
        repaired=sanitized_keywords,
        model_ready_at=model_ready_at,
        inference_done_at=inference_done_at,
    )
    if failures:
        raise ResultsIncomplete(done, failures)
    return done
