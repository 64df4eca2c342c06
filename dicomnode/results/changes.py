"""Change since a prior study: what a follow-up pipeline adds to its findings.

Plain dataclasses (no pydicom). A :class:`Comparison` says which prior study the findings were
compared with (or why none was: ``note``), and holds one :class:`RegionChange` per finding
seen in either study: new, resolved, enlarging, stable or decreasing, with the volumes at both
visits, the volume change and the volume doubling time. The SR encodes each change as a TID
1501 group that references the prior study's image (or our own earlier SR) it was measured on;
the summary image shows :class:`ChangeSnapshot` pairs side by side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

import numpy as np

from dicomnode.results.findings import FindingKind
from dicomnode.results.geometry import Vector3, as_vector

__all__ = [
    "ChangeSnapshot",
    "ChangeStatus",
    "Comparison",
    "InstanceRef",
    "RegionChange",
    "interval_days",
]


class ChangeStatus(StrEnum):
    """What happened to one finding between the prior and the current study."""

    NEW = "new"
    RESOLVED = "resolved"
    ENLARGING = "enlarging"
    STABLE = "stable"
    DECREASING = "decreasing"


def interval_days(prior_date: str | None, current_date: str | None) -> int | None:
    """Days between two DICOM dates (``YYYYMMDD``); None when either is missing or invalid."""
    try:
        before = date(int(prior_date[:4]), int(prior_date[4:6]), int(prior_date[6:8]))  # type: ignore[index]
        after = date(int(current_date[:4]), int(current_date[4:6]), int(current_date[6:8]))  # type: ignore[index]
    except (TypeError, ValueError):
        return None
    return (after - before).days


@dataclass(frozen=True)
class InstanceRef:
    """A DICOM instance of another study (an image of the prior, our own earlier SR or SEG)."""

    study_uid: str
    series_uid: str
    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True)
class RegionChange:
    """One finding across two visits.

    Parameters
    ----------
    kind : FindingKind or str
        What the finding is.
    status : ChangeStatus or str
        New, resolved, enlarging, stable or decreasing.
    tracking_id : str
        Human-readable identifier (<= 64 characters), the current finding's where there is one.
    prior_center, current_center : Vector3, optional
        Centre in each study's own patient coordinates (None where absent).
    prior_volume_ml, current_volume_ml : float, optional
        Volume at each visit (None where absent).
    prior_source : InstanceRef, optional
        The prior instance the prior measurement came from (the image at its centre, or our
        earlier SR whose measurement was reused).
    """

    kind: FindingKind
    status: ChangeStatus
    tracking_id: str
    prior_center: Vector3 | None = None
    current_center: Vector3 | None = None
    prior_volume_ml: float | None = None
    current_volume_ml: float | None = None
    prior_source: InstanceRef | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FindingKind(self.kind))
        object.__setattr__(self, "status", ChangeStatus(self.status))
        if not 0 < len(self.tracking_id) <= 64:
            raise ValueError(f"tracking_id must have 1 to 64 characters, got {self.tracking_id!r}")
        for name in ("prior_center", "current_center"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, as_vector(name, value))
        for name in ("prior_volume_ml", "current_volume_ml"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.status is ChangeStatus.NEW and self.prior_volume_ml:
            raise ValueError("a new finding has no prior_volume_ml")
        if self.status is ChangeStatus.RESOLVED and self.current_volume_ml:
            raise ValueError("a resolved finding has no current_volume_ml")

    @property
    def volume_change_percent(self) -> float | None:
        """``100 × (V_current − V_prior) / V_prior``; None unless both volumes are > 0."""
        if not (self.prior_volume_ml and self.current_volume_ml is not None):
            return None
        return 100.0 * (self.current_volume_ml - self.prior_volume_ml) / self.prior_volume_ml

    def doubling_time_days(self, interval: float | None) -> float | None:
        """Volume doubling time ``interval × ln 2 / ln(V_current / V_prior)`` in days, for a
        finding that grew; None when it did not grow, or without both volumes or the interval."""
        before, after = self.prior_volume_ml, self.current_volume_ml
        if not (interval and interval > 0 and before and after and after > before):
            return None
        return interval * math.log(2.0) / math.log(after / before)


@dataclass(frozen=True, eq=False)
class ChangeSnapshot:
    """The same finding at both visits, for the summary image (compared by identity).

    Parameters
    ----------
    caption : str
        What the pair shows, e.g. ``"nodule 2: +85 %, VDT 190 d"``.
    prior, current : numpy.ndarray
        2-D display images (any float range: windowed when drawn), prior one may be None for
        a new finding, current None for a resolved one.
    """

    caption: str
    prior: np.ndarray | None
    current: np.ndarray | None

    def __post_init__(self) -> None:
        for name in ("prior", "current"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, np.ndarray) or value.ndim != 2):
                raise ValueError(f"{name} must be a 2-D numpy array")
        if self.prior is None and self.current is None:
            raise ValueError("a snapshot needs a prior or a current image")


@dataclass(frozen=True)
class Comparison:
    """The findings compared with a prior study, or why they were not.

    Parameters
    ----------
    prior_study_uid : str, optional
        The prior study (None when no prior was available: see ``note``).
    prior_study_date : str, optional
        Its StudyDate (``YYYYMMDD``).
    interval_days : int, optional
        Days from the prior study to the current one.
    changes : tuple of RegionChange
        One per finding seen in either study.
    evidence : tuple of InstanceRef
        Prior instances referenced: our own earlier SR/SEG whose measurements were used, and
        the prior images that the prior measurements lie on.
    note : str, optional
        Why priors were wanted but are missing (the node's ``priors_note``), or a remark.
    snapshots : tuple of ChangeSnapshot
        Largest changes, current beside prior, for the summary image.
    total_prior_ml, total_current_ml : float, optional
        Total volume of all findings of the kind at each visit (lesion load).
    """

    prior_study_uid: str | None = None
    prior_study_date: str | None = None
    interval_days: int | None = None
    changes: tuple[RegionChange, ...] = ()
    evidence: tuple[InstanceRef, ...] = ()
    note: str | None = None
    snapshots: tuple[ChangeSnapshot, ...] = ()
    total_prior_ml: float | None = None
    total_current_ml: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "changes", tuple(self.changes))
        object.__setattr__(self, "evidence", tuple(self.evidence))
        object.__setattr__(self, "snapshots", tuple(self.snapshots))
        if self.prior_study_uid is None and (self.changes or self.evidence):
            raise ValueError("changes and evidence need a prior_study_uid")
        if self.note is not None and len(self.note) > 1024:
            raise ValueError(f"note must be at most 1024 characters, got {len(self.note)}")

    @property
    def has_prior(self) -> bool:
        """Whether a prior study was compared with."""
        return self.prior_study_uid is not None

    def count(self, status: ChangeStatus | str) -> int:
        """How many findings have ``status``."""
        wanted = ChangeStatus(status)
        return sum(1 for change in self.changes if change.status is wanted)
