"""What every result object shares: identity of the algorithm, UIDs, labels, series naming.

UIDs are derived deterministically from the UID root and the inputs (sources, algorithm,
output kind, predecessor), so re-encoding the same findings yields the same UIDs, and a rerun
that replaces an earlier result (``predecessor``) yields new ones.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset

from dicomnode.results.errors import EncodingError

__all__ = [
    "MANUFACTURER",
    "DEMO_LABEL",
    "DEMO_NOTE",
    "RESEARCH_LABEL",
    "Algorithm",
    "EncodingContext",
    "Predecessor",
    "derive_uid",
    "source_key",
]

MANUFACTURER = "dicomnode"
"""Manufacturer / Manufacturer's Model Name / Content Creator's Name of every result."""

RESEARCH_LABEL = "RESEARCH USE ONLY"
#: Added to every object made with demo weights (see :attr:`Algorithm.demo_weights`).
DEMO_LABEL = "DEMO WEIGHTS"
#: The sentence the summary image and comments carry for demo weights.
DEMO_NOTE = "DEMO WEIGHTS trained on synthetic phantoms, not on patient data"
"""Label carried by every result (SeriesDescription, ContentDescription, ImageComments...)."""

_UID_ROOT = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def derive_uid(root: str, *parts: str) -> str:
    """A UID under ``root`` derived from ``parts`` (same parts, same UID).

    Parameters
    ----------
    root : str
        UID root, e.g. ``"2.25"`` or an organisation root; at most 40 characters.
    *parts : str
        Values the UID is derived from.

    Returns
    -------
    str
        ``root + "." + decimal digits of sha256(parts)``, at most 64 characters.
    """
    if not _UID_ROOT.match(root) or len(root) > 40:
        raise EncodingError(
            f"uid_root must be a dotted-decimal UID of at most 40 characters, got {root!r}"
        )
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    number = str(int.from_bytes(digest[:16], "big"))
    return f"{root}.{number}"[:64].rstrip(".")


@dataclass(frozen=True)
class Algorithm:
    """The algorithm that made the findings.

    Parameters
    ----------
    name : str
        Pipeline name, e.g. ``"lung_nodule"`` (1-64 characters).
    version : str
        Pipeline version (1-64 characters).
    model_sha256 : str
        sha256 (64 lowercase hex digits) of the model file, or "" when no model was used.
    demo_weights : bool
        The model's weights are demo weights trained on synthetic phantoms: every object
        labels itself with :data:`DEMO_LABEL` besides :data:`RESEARCH_LABEL`.
    model_name : str
        Name of the weights (a bundle's metadata ``name``), "" when unknown; at most 64
        characters are kept where a DICOM value limits it.
    model_version : str
        Version of the weights, "" when unknown.
    """

    name: str
    version: str
    model_sha256: str = ""
    demo_weights: bool = False
    model_name: str = ""
    model_version: str = ""

    @property
    def weights(self) -> str:
        """``"<model name> <model version>"`` ("" when neither is known)."""
        return " ".join(part for part in (self.model_name, self.model_version) if part)

    def parameters(self) -> dict[str, str]:
        """What identifies the weights, for Algorithm Parameters: ``weights`` (name and
        version), ``model_sha256`` and, for demo weights, ``demo`` (what they are)."""
        out = {}
        if self.weights:
            out["weights"] = self.weights
        if self.model_sha256:
            out["model_sha256"] = self.model_sha256
        if self.demo_weights:
            out["demo"] = DEMO_NOTE
        return out

    @property
    def label(self) -> str:
        """``RESEARCH USE ONLY``, preceded by ``DEMO WEIGHTS`` for demo weights."""
        return f"{DEMO_LABEL} {RESEARCH_LABEL}" if self.demo_weights else RESEARCH_LABEL

    def __post_init__(self) -> None:
        if not 1 <= len(self.name) <= 64:
            raise ValueError(f"name must have 1 to 64 characters, got {len(self.name)}")
        if not 1 <= len(self.version) <= 64:
            raise ValueError(f"version must have 1 to 64 characters, got {len(self.version)}")
        if self.model_sha256 and not _SHA256.match(self.model_sha256):
            raise ValueError("model_sha256 must be 64 lowercase hexadecimal digits or empty")


@dataclass(frozen=True)
class Predecessor:
    """An earlier result that the new one replaces (same output kind).

    Parameters
    ----------
    study_instance_uid, series_instance_uid, sop_class_uid, sop_instance_uid : str
        Identity of the replaced instance.
    """

    study_instance_uid: str
    series_instance_uid: str
    sop_class_uid: str
    sop_instance_uid: str

    def __post_init__(self) -> None:
        for name in (
            "study_instance_uid",
            "series_instance_uid",
            "sop_class_uid",
            "sop_instance_uid",
        ):
            value = getattr(self, name)
            if not (_UID_ROOT.match(value) and len(value) <= 64):
                raise ValueError(
                    f"{name} must be a valid UID of at most 64 characters, got {value!r}"
                )

    @classmethod
    def from_dataset(cls, ds: Dataset) -> Predecessor:
        """The identity of an earlier result dataset."""
        return cls(
            study_instance_uid=str(ds.StudyInstanceUID),
            series_instance_uid=str(ds.SeriesInstanceUID),
            sop_class_uid=str(ds.SOPClassUID),
            sop_instance_uid=str(ds.SOPInstanceUID),
        )


@dataclass(frozen=True)
class EncodingContext:
    """Identity and naming shared by the objects of one ``encode`` call.

    Parameters
    ----------
    algorithm : Algorithm
        What made the findings.
    uid_root : str
        Root of every generated UID.
    series_number : int
        First series number; each output kind uses its own offset from it.
    source_key : str
        Digest of the source instances' UIDs (see :func:`source_key`).
    predecessors : tuple of Predecessor
        The earlier results being replaced (any output kinds).
    """

    algorithm: Algorithm
    uid_root: str
    series_number: int
    source_key: str
    predecessors: tuple[Predecessor, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.series_number <= 2**31 - 1 - 10:
            raise ValueError(
                f"series_number must be in [1, {2**31 - 11}], got {self.series_number}"
            )
        derive_uid(self.uid_root, "check")

    def uid(self, *purpose: str) -> str:
        """A UID for ``purpose`` (e.g. "seg", "series"), stable for the same inputs."""
        pred = ",".join(sorted(p.sop_instance_uid for p in self.predecessors))
        alg = self.algorithm
        return derive_uid(
            self.uid_root, alg.name, alg.version, alg.model_sha256, self.source_key, pred, *purpose
        )

    def predecessors_of(self, sop_class_uids: set[str]) -> list[Predecessor]:
        """The predecessors whose SOP Class is one of ``sop_class_uids``."""
        return [p for p in self.predecessors if p.sop_class_uid in sop_class_uids]

    def series_description(self, what: str) -> str:
        """``"<pipeline> <version> <what> [DEMO WEIGHTS ]RESEARCH USE ONLY"``, 64 characters
        at most (the head is cut, never the label)."""
        label = self.algorithm.label
        head = f"{self.algorithm.name} {self.algorithm.version} {what}"
        return f"{head[: 64 - len(label) - 1]} {label}"

    @property
    def software_version(self) -> str:
        """Software Versions value: pipeline version and model checksum prefix."""
        alg = self.algorithm
        text = f"{alg.name} {alg.version}"
        if alg.model_sha256:
            text += f" model sha256:{alg.model_sha256[:16]}"
        return text[:64]


def source_key(sources: Sequence[Dataset]) -> str:
    """Digest of the sources' SOP Instance UIDs, independent of their order."""
    uids = sorted(str(ds.SOPInstanceUID) for ds in sources)
    return hashlib.sha256("\n".join(uids).encode("ascii")).hexdigest()
