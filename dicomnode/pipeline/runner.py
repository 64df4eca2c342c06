"""Run one pipeline on files: ``dicomnode run PIPELINE PATH --out DIR``.

Scans files and folders for DICOM instances, groups them into series (series-level pipelines:
one job per series) or studies (study-level: one job per study) and hands each to
:func:`dicomnode.pipeline.execute.execute`, the workers' path: check, run, encode, write the
result objects durably into ``out_dir``.

Imports pydicom (headers) at import time and torch when a pipeline runs: not for the SCP's
start-up path.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dicomnode.errors import PermanentError
from dicomnode.headers import group_series
from dicomnode.logs import job_identifiers
from dicomnode.phi import PatientIdentifiers, redact
from dicomnode.pipeline.contract import (
    Pipeline,
    PipelineInputs,
    PipelineLevel,
    SeriesInput,
)
from dicomnode.pipeline.execute import ResultsIncomplete, choose_outputs, execute
from dicomnode.pipeline.registry import PipelineRegistry
from dicomnode.pipeline.runtime import resolve_device
from dicomnode.results.findings import Findings
from dicomnode.results.kinds import OutputKind

__all__ = ["JobReport", "RunReport", "describe_findings", "discover_inputs", "run_on_files"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobReport:
    """One job of a run: a series or a study.

    Attributes
    ----------
    study_uid : str
        Study of the job.
    series_uids : tuple of str
        Series the job processed.
    summary : str
        One line describing the findings (or the refusal).
    files : tuple of Path
        Result files written.
    seconds : float
        Wall time of the job (check, run, encode, write).
    refused : str, optional
        The reason the pipeline refused the input, if it did.
    findings : Findings, optional
        The findings (absent when refused).
    repaired : tuple of str
        Source attributes the sanitizer repaired in the copies the results were made from.
    failed : str, optional
        Why results could not be made (a permanent error: the sources' fault); the objects
        that could be made are in ``files``.
    """

    study_uid: str
    series_uids: tuple[str, ...]
    summary: str
    files: tuple[Path, ...] = ()
    seconds: float = 0.0
    refused: str | None = None
    findings: Findings | None = None
    repaired: tuple[str, ...] = ()
    failed: str | None = None

    @property
    def line(self) -> str:
        """One line for a terminal."""
        subject = self.series_uids[0] if len(self.series_uids) == 1 else self.study_uid
        text = f"REFUSED: {self.refused}" if self.refused else self.summary
        if self.failed:
            text += f"; FAILED: {self.failed}"
        if self.repaired:
            text += f"; source attributes repaired: {', '.join(self.repaired)}"
        return f"{subject}: {text} ({self.seconds:.1f} s)"


@dataclass(frozen=True)
class RunReport:
    """What :func:`run_on_files` did.

    Attributes
    ----------
    pipeline, version : str
        The pipeline that ran.
    device : str
        The torch device it ran on.
    jobs : tuple of JobReport
        One per series or study.
    seconds : float
        Wall time of the whole run.
    skipped : tuple of Path
        Files that are not readable DICOM.
    """

    pipeline: str
    version: str
    device: str
    jobs: tuple[JobReport, ...]
    seconds: float
    skipped: tuple[Path, ...] = field(default=())

    @property
    def files(self) -> tuple[Path, ...]:
        """Every result file written."""
        return tuple(p for job in self.jobs for p in job.files)

    @property
    def refused(self) -> tuple[JobReport, ...]:
        """The jobs the pipeline refused."""
        return tuple(job for job in self.jobs if job.refused is not None)

    @property
    def failed(self) -> tuple[JobReport, ...]:
        """The jobs whose results could not (all) be made."""
        return tuple(job for job in self.jobs if job.failed is not None)

    def summary(self) -> str:
        """Several lines for a terminal: one per job, then the totals."""
        lines = [job.line for job in self.jobs]
        lines.append(
            f"{self.pipeline} {self.version} on {self.device}: {len(self.jobs)} job(s), "
            f"{len(self.files)} file(s) written in {self.seconds:.1f} s"
        )
        return "\n".join(lines)


def describe_findings(findings: Findings) -> str:
    """One line: regions with scores, mask sizes, classifications."""
    parts = []
    if findings.regions:
        scores = ", ".join(f"{r.score:.2f}" for r in findings.regions if r.score is not None)
        parts.append(
            f"{len(findings.regions)} region(s)" + (f" (scores {scores})" if scores else "")
        )
    for mask in findings.masks:
        parts.append(f"{mask.kind.value} mask {int(mask.array.sum())} voxel(s)")
    for c in findings.classifications:
        side = c.laterality.value if c.laterality else "study"
        score = f" score {c.score:.2f}" if c.score is not None else ""
        density = f" density {c.density.value}" if c.density else ""
        parts.append(f"{side}:{score}{density}")
    kinds = "/".join(k.value for k in findings.kinds)
    return f"{kinds}: " + ("; ".join(parts) if parts else "nothing found")


def discover_inputs(path: Path, level: PipelineLevel) -> tuple[list[PipelineInputs], list[Path]]:
    """Group the DICOM files under ``path`` into jobs for a pipeline of ``level``.

    Files are read and series represented as ``route explain`` and the node do
    (:mod:`dicomnode.headers`): an input's Modality and SeriesDescription are those of the
    instance with the lowest InstanceNumber.

    Returns
    -------
    jobs : list of PipelineInputs
        One per series (SERIES) or per study (STUDY), ordered by UID.
    skipped : list of Path
        Files that are not DICOM, unreadable, or lack Study/Series Instance UIDs.
    """
    groups, skipped = group_series(Path(path))
    inputs = sorted(
        (
            SeriesInput(
                study_uid=found.header.study_uid,
                series_uid=uid,
                files=tuple(found.files),
                modality=found.header.text("Modality") or None,
                description=found.header.text("SeriesDescription") or None,
            )
            for uid, found in groups.items()
        ),
        key=lambda s: (s.study_uid, s.series_uid),
    )
    unused = [file for file, _ in skipped]
    if level is PipelineLevel.SERIES:
        return [PipelineInputs(s.study_uid, (s,)) for s in inputs], unused
    studies: dict[str, list[SeriesInput]] = defaultdict(list)
    for s in inputs:
        studies[s.study_uid].append(s)
    return [PipelineInputs(study, tuple(items)) for study, items in studies.items()], unused


def _scrubbed(inputs: PipelineInputs, text: str) -> str:
    """A pipeline's text without the identifiers of its inputs (as the workers' child does)."""
    return redact(text, PatientIdentifiers.from_files(list(inputs.files)))


def _run_job(
    pipeline: Pipeline,
    inputs: PipelineInputs,
    out_dir: Path,
    *,
    device: str,
    options: Mapping[str, Any],
    outputs: Sequence[OutputKind],
    uid_root: str,
) -> JobReport:
    series_uids = tuple(s.series_uid for s in inputs.series)
    failed: str | None = None
    try:
        done = execute(
            pipeline,
            inputs,
            out_dir,
            device=device,
            outputs=outputs,
            options=options,
            uid_root=uid_root,
            logger=log,
        )
    except ResultsIncomplete as exc:
        done, failed = exc.execution, _scrubbed(inputs, str(exc))
    except PermanentError as exc:
        failed = _scrubbed(inputs, str(exc))
        return JobReport(inputs.study_uid, series_uids, "no results", failed=failed)
    if done.refused is not None:
        refused = _scrubbed(inputs, done.refused)
        return JobReport(inputs.study_uid, series_uids, "refused", (), done.seconds, refused)
    assert done.findings is not None
    return JobReport(
        study_uid=inputs.study_uid,
        series_uids=series_uids,
        summary=describe_findings(done.findings),
        files=tuple(out_dir / f.name for f in done.files),
        seconds=done.seconds,
        findings=done.findings,
        repaired=done.repaired,
        failed=failed,
    )


def run_on_files(
    pipeline_name: str,
    path: Path,
    out_dir: Path,
    *,
    options: Mapping[str, Any] | None = None,
    device: str = "auto",
    outputs: Sequence[str] | None = None,
    uid_root: str = "2.25",
    registry: PipelineRegistry | None = None,
) -> RunReport:
    """Run ``pipeline_name`` on the DICOM files under ``path`` and write results to ``out_dir``.

    Parameters
    ----------
    pipeline_name : str
        A registered pipeline (entry point ``dicomnode.pipelines``).
    path : Path
        A DICOM file or a folder searched recursively; non-DICOM files are skipped.
    out_dir : Path
        Created when missing; receives ``<SOPInstanceUID>.dcm`` per result object, written
        durably by :func:`~dicomnode.pipeline.execute.execute` (as a worker writes them).
    options : mapping, optional
        The pipeline's config section (``pipelines.<name>``: bundle, threshold...).
    device : str
        ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
    outputs : sequence of str, optional
        ``sr``, ``seg``, ``summary``; default the pipeline's ``default_outputs`` (the caller
        applies ``pipelines.<name>.outputs``, see :func:`~dicomnode.pipeline.choose_outputs`).
    uid_root : str
        Root of the result UIDs (``node.uid_root``).
    registry : PipelineRegistry, optional
        Where to look the pipeline up (default: the installed entry points).

    Returns
    -------
    RunReport
        Per job: findings summary, files written, seconds, or the refusal reason.

    Raises
    ------
    PipelineUnavailable
        Unknown pipeline or one that cannot be imported.
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        An output kind that is not ``sr``, ``seg`` or ``summary``.
    """
    started = time.monotonic()
    cls = (registry or PipelineRegistry()).get(pipeline_name)
    opts = dict(options or {})
    pipeline = cls(opts)
    wanted = choose_outputs(outputs, None, pipeline.default_outputs)
    resolved = resolve_device(device)
    jobs, skipped = discover_inputs(Path(path), cls.level)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    for inputs in jobs:
        with job_identifiers(list(inputs.files)):
            report = _run_job(
                pipeline,
                inputs,
                out,
                device=resolved,
                options=opts,
                outputs=wanted,
                uid_root=uid_root,
            )
            log.info("%s: %s", pipeline_name, report.refused or report.summary)
        reports.append(report)
    return RunReport(
        pipeline=pipeline_name,
        version=cls.version,
        device=resolved,
        jobs=tuple(reports),
        seconds=time.monotonic() - started,
        skipped=tuple(skipped),
    )
