"""The contract every pipeline implements (DESIGN.md section 5).

A pipeline is a class registered under the entry-point group ``dicomnode.pipelines``. The node
creates one instance per worker process (so models stay loaded between jobs), calls
:meth:`Pipeline.check` before queuing a job (headers only, cheap) and :meth:`Pipeline.run` in
the worker's child process. Encoding findings to DICOM is shared code in
:mod:`dicomnode.results`; pipelines import nothing else of the node but this module and the
findings types.

This module imports neither torch nor pydicom: the SCP imports it to check inputs.
"""

from __future__ import annotations

import enum
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from dicomnode.errors import DicomNodeError
from dicomnode.results.findings import Findings
from dicomnode.results.kinds import DEFAULT_OUTPUTS

__all__ = [
    "InputRefused",
    "Pipeline",
    "PipelineInputs",
    "PipelineLevel",
    "PipelineResult",
    "PriorInput",
    "RunContext",
    "SeriesInput",
]


class PipelineLevel(str, enum.Enum):
    """Whether a job holds one series or a whole study."""

    SERIES = "series"
    STUDY = "study"


class InputRefused(DicomNodeError):
    """The pipeline cannot process these inputs; ``reason`` says why in one line.

    Raised by :meth:`Pipeline.check` (before queuing) or early in :meth:`Pipeline.run`
    (before any heavy work), e.g. wrong modality, too few slices, missing views, undecodable
    pixel data, decoded size above the configured budget.
    """

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class SeriesInput:
    """One stored series handed to a pipeline.

    Parameters
    ----------
    study_uid, series_uid : str
        Identity of the series.
    files : tuple of Path
        Its stored Part 10 files (any order).
    modality : str, optional
        Modality from the header.
    description : str, optional
        SeriesDescription from the header.
    role : str, optional
        Name of the input a study-level route selected it as (e.g. ``"flair"``).
    """

    study_uid: str
    series_uid: str
    files: tuple[Path, ...]
    modality: str | None = None
    description: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class PriorInput:
    """One series of an earlier study of the same patient, retrieved as a prior.

    Parameters
    ----------
    series : SeriesInput
        The prior series (its ``study_uid`` is the prior study's; ``role`` is ``"prior"``).
    study_date : str, optional
        StudyDate of the prior study (``YYYYMMDD``), for intervals such as doubling times.
    reports : tuple of Path
        The node's own earlier result objects for that study found at the source (SR, SEG),
        whose measurements a pipeline may use (and reference) instead of re-running on the
        prior.
    """

    series: SeriesInput
    study_date: str | None = None
    reports: tuple[Path, ...] = ()


@dataclass(frozen=True)
class PipelineInputs:
    """Everything one job processes: a series, or the selected series of a study, and the
    priors retrieved for it (empty unless the route has a ``priors`` policy and the pipeline
    uses them: :attr:`Pipeline.uses_priors`)."""

    study_uid: str
    series: tuple[SeriesInput, ...]
    priors: tuple[PriorInput, ...] = ()
    #: Why the priors are missing when the policy wanted some (source down, timeout, none
    #: found); a pipeline says so in its report.
    priors_note: str | None = None

    def __post_init__(self) -> None:
        if not self.series:
            raise ValueError("series must hold at least one SeriesInput")
        if any(s.study_uid != self.study_uid for s in self.series):
            raise ValueError("every SeriesInput must belong to study_uid")

    def role(self, name: str) -> SeriesInput | None:
        """The series selected for the named input ``name``, if any."""
        return next((s for s in self.series if s.role == name), None)

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file of every series."""
        return tuple(p for s in self.series for p in s.files)


@dataclass
class RunContext:
    """What the node gives a running pipeline.

    Parameters
    ----------
    device : str
        Resolved torch device, ``"cpu"`` or ``"cuda"`` (see ``dicomnode.pipeline.runtime``).
    work_dir : Path
        A private scratch directory, removed after the job.
    options : Mapping
        The pipeline's section of the config (``pipelines.<name>``: bundle, threshold, ...).
    log : logging.Logger
        Logger carrying the job's correlation id; never log patient identifiers.
    """

    device: str
    work_dir: Path
    options: Mapping[str, Any] = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("dicomnode.pipeline"))


@dataclass(frozen=True)
class PipelineResult:
    """What a pipeline returns: findings plus what made them.

    Parameters
    ----------
    findings : Findings
        What was found (may be empty: "nothing found" is a result too).
    model_sha256 : str
        sha256 of the model weights used ("" when none), for algorithm identification.
    demo_weights : bool
        The weights are demo weights (synthetic training data): every result object says so.
    model_name : str
        Name of the weights (the bundle's metadata ``name``; "" when none).
    model_version : str
        Version of the weights (the bundle's metadata ``version``; "" when none).
    sources : tuple of pathlib.Path
        The input files the findings were made from, when the pipeline left some out (e.g.
        a mammography study's tomosynthesis and FOR PROCESSING images): the result objects
        reference and show these only. Empty: all of the inputs.
    """

    findings: Findings
    model_sha256: str = ""
    demo_weights: bool = False
    model_name: str = ""
    model_version: str = ""
    sources: tuple[Path, ...] = ()


class Pipeline(ABC):
    """Base class of analysis pipelines.

    Subclasses set ``name``, ``version`` and ``level`` and implement :meth:`check` and
    :meth:`run`. The constructor receives the pipeline's config section; loading models
    belongs in :meth:`run` (lazily, once per process), never in ``__init__`` or :meth:`check`.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    level: ClassVar[PipelineLevel] = PipelineLevel.SERIES
    #: Outputs produced when a route does not choose (``sr``, ``seg``, ``summary``).
    default_outputs: ClassVar[tuple[str, ...]] = DEFAULT_OUTPUTS
    #: Whether :meth:`run` uses :attr:`PipelineInputs.priors` (the node retrieves priors for
    #: a route's ``priors`` policy only for pipelines that do).
    uses_priors: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any] | None = None):
        self.options: Mapping[str, Any] = dict(options or {})

    @abstractmethod
    def check(self, inputs: PipelineInputs) -> None:
        """Refuse inputs this pipeline cannot process (raise :class:`InputRefused`).

        Must be cheap: headers only, no pixel decoding, no model loading.
        """

    def prepare(self, device: str) -> None:  # noqa: B027 - optional hook, no-op by default
        """Load the model onto ``device`` now, before :meth:`run` (optional; kept warm).

        Called by the node right before :meth:`run`, so that a job's timeline can tell loading
        from inference (its ``model_ready`` stage). The default does nothing: a pipeline that
        loads lazily in :meth:`run` still works, its loading then counts as inference.
        """

    @abstractmethod
    def run(self, inputs: PipelineInputs, ctx: RunContext) -> PipelineResult:
        """Analyse the inputs and return findings in patient coordinates."""
