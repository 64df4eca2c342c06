"""What crosses the pipe between a node's process and its pipeline children (all picklable).

Two requests, :class:`CheckRequest` (the checker: load a pipeline, check inputs) and
:class:`RunRequest` (a worker: run one job), each answered by its own outcome. The child sends
:data:`READY` first, once its imports are done.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from dicomnode.pipeline.contract import PipelineInputs
from dicomnode.pipeline.execute import PredecessorKey, ResultFile

__all__ = ["READY", "CheckOutcome", "CheckRequest", "OutcomeKind", "RunOutcome", "RunRequest"]

#: First message of a child: its imports are done and it takes requests.
READY = "ready"


class OutcomeKind(StrEnum):
    """How a request ended."""

    OK = "ok"
    REFUSED = "refused"
    ERROR = "error"


@dataclass(frozen=True)
class CheckRequest:
    """Load pipeline ``pipeline`` and check ``inputs`` (None: only load it).

    Parameters
    ----------
    pipeline : str
        Pipeline name (registry key).
    class_paths : dict
        ``name -> "module:Class"`` from the config (the registry's extra plugins).
    options : dict
        The pipeline's config section.
    inputs : PipelineInputs, optional
        The series to check.
    """

    pipeline: str
    class_paths: dict[str, str]
    options: dict[str, Any]
    inputs: PipelineInputs | None = None


@dataclass(frozen=True)
class RunRequest:
    """Everything a child needs for one job (no DB access in the child).

    Parameters
    ----------
    job_id : int
        The job.
    pipeline, class_paths, options
        As in :class:`CheckRequest`.
    inputs : PipelineInputs
        The job's series, with their stored files.
    outputs : tuple of str
        Output kinds to encode.
    uid_root : str
        Root of result UIDs.
    results_dir : str
        Absolute directory to write the result files to (``<data_dir>/results/<job>``).
    predecessors : tuple of tuple
        ``(study, series, sop_class, sop_instance)`` of the results this run replaces.
    device : str
        ``workers.device``.
    """

    job_id: int
    pipeline: str
    class_paths: dict[str, str]
    options: dict[str, Any]
    inputs: PipelineInputs
    outputs: tuple[str, ...]
    uid_root: str
    results_dir: str
    predecessors: tuple[PredecessorKey, ...] = ()
    device: str = "auto"


@dataclass(frozen=True)
class CheckOutcome:
    """The answer to a :class:`CheckRequest`: the pipeline's version and default outputs, and
    the refusal (``REFUSED``) or the problem (``ERROR``) in ``error``."""

    kind: OutcomeKind
    error: str = ""
    version: str = ""
    default_outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunOutcome:
    """The answer to a :class:`RunRequest`.

    ``results`` are the files written into ``results_dir``; ``error`` the refusal or the
    failure; ``restart`` asks the worker for a fresh child (after out-of-memory);
    ``permanent`` says that retrying cannot help.
    """

    kind: OutcomeKind
    results: tuple[ResultFile, ...] = ()
    error: str = ""
    restart: bool = False
    #: The error is the input's fault (:class:`dicomnode.errors.PermanentError`): no retry.
    permanent: bool = False
    #: Source attributes the sanitizer repaired for the results (keywords only).
    repaired: tuple[str, ...] = ()
    #: ``(stage, time.time())`` of the timeline stages measured in the child
    #: (``model_ready``, ``inference_done``; see :mod:`dicomnode.jobs.timeline`).
    stages: tuple[tuple[str, float], ...] = ()


#: Either request.
Request = CheckRequest | RunRequest
#: Either answer.
Outcome = CheckOutcome | RunOutcome
