"""The findings model: what pipelines produce and :mod:`dicomnode.results` encodes.

Plain dataclasses and enums, importable without pydicom or torch. Coordinates are in the DICOM
patient coordinate system (LPS, millimetres). Constructors validate their arguments and raise
:class:`ValueError` naming the parameter and the limit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

from dicomnode.results.geometry import Vector3, VolumeGeometry, as_vector

if TYPE_CHECKING:
    from dicomnode.results.changes import Comparison

__all__ = [
    "BreastDensity",
    "ClassProbability",
    "Classification",
    "FindingKind",
    "Findings",
    "Laterality",
    "Mask",
    "RegionFinding",
    "RegionShape",
    "Vector3",
    "VolumeGeometry",
]


class FindingKind(StrEnum):
    """What a finding is; decides the codes used in SEG and SR."""

    LUNG_NODULE = "lung_nodule"
    BRAIN_LESION = "brain_lesion"
    BREAST_ASSESSMENT = "breast_assessment"


class RegionShape(StrEnum):
    """Shape of a :class:`RegionFinding` in patient coordinates."""

    POINT = "point"
    BOX = "box"
    ELLIPSOID = "ellipsoid"


class Laterality(StrEnum):
    """Side of a paired organ, with the DICOM (0020,0060) Laterality values."""

    LEFT = "L"
    RIGHT = "R"


class BreastDensity(StrEnum):
    """BI-RADS breast composition (density) category A-D."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"


def _unit_interval(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return float(value)


def _non_negative(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if not (math.isfinite(float(value)) and float(value) >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return float(value)


@dataclass(frozen=True, eq=False)
class Mask:
    """A binary mask of one finding kind, indexed [slice, row, column] like ``geometry``.

    Compared by identity (numpy arrays have no single truth value).

    Parameters
    ----------
    kind : FindingKind or str
        What the mask segments (one SEG segment per kind).
    array : numpy.ndarray
        Boolean array of shape ``geometry.shape``.
    geometry : VolumeGeometry
        Where each slice of ``array`` lies in the source series.
    label : str
        Segment label; defaults to the kind's name.
    """

    kind: FindingKind
    array: np.ndarray
    geometry: VolumeGeometry
    label: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FindingKind(self.kind))
        if not isinstance(self.array, np.ndarray) or self.array.dtype != np.bool_:
            raise ValueError("array must be a numpy array of dtype bool")
        if self.array.shape != self.geometry.shape:
            raise ValueError(
                f"array shape {self.array.shape} must equal geometry shape {self.geometry.shape}"
            )
        if len(self.label) > 64:
            raise ValueError(f"label must be at most 64 characters, got {len(self.label)}")

    @property
    def is_empty(self) -> bool:
        """True when no voxel is set."""
        return not bool(self.array.any())

    @property
    def volume_ml(self) -> float:
        """Total volume of the set voxels in mL (slice thickness: the median gap between
        slice positions, 1 mm for a single slice)."""
        geo = self.geometry
        if len(geo.positions) > 1:
            gaps = np.abs(np.diff(np.asarray(geo.positions) @ np.asarray(geo.normal)))
            thickness = float(np.median(gaps))
        else:
            thickness = 1.0
        voxel_ml = geo.pixel_spacing[0] * geo.pixel_spacing[1] * thickness / 1000.0
        return float(self.array.sum()) * voxel_ml


@dataclass(frozen=True)
class RegionFinding:
    """A localised finding (nodule, lesion) in patient coordinates with its measurements.

    Parameters
    ----------
    kind : FindingKind or str
        What was found.
    shape : RegionShape or str
        POINT (centre only), BOX or ELLIPSOID (centre + 3 orthogonal half-axes).
    center : Vector3
        Centre in patient coordinates (mm).
    axes : tuple of Vector3
        For BOX: 3 orthogonal half-edge vectors; for ELLIPSOID: 3 orthogonal semi-axis vectors
        (mm); empty for POINT.
    diameter_mm, volume_ml : float, optional
        Measurements (>= 0).
    score : float, optional
        Detection score of the algorithm, in [0, 1].
    tracking_id : str
        Human-readable tracking identifier (<= 64 characters); defaults to "<kind> <n>".
    """

    kind: FindingKind
    shape: RegionShape
    center: Vector3
    axes: tuple[Vector3, ...] = ()
    diameter_mm: float | None = None
    volume_ml: float | None = None
    score: float | None = None
    tracking_id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FindingKind(self.kind))
        object.__setattr__(self, "shape", RegionShape(self.shape))
        if self.kind is FindingKind.BREAST_ASSESSMENT:
            raise ValueError("kind must be a localised finding kind, not breast_assessment")
        object.__setattr__(self, "center", as_vector("center", self.center))
        axes = tuple(as_vector(f"axes[{i}]", a) for i, a in enumerate(self.axes))
        object.__setattr__(self, "axes", axes)
        expected = 0 if self.shape is RegionShape.POINT else 3
        if len(axes) != expected:
            raise ValueError(f"axes must have {expected} vectors for shape {self.shape.value}")
        arr = np.asarray(axes).reshape(-1, 3)
        if expected and min(np.linalg.norm(arr, axis=1)) <= 0:
            raise ValueError("axes must have lengths > 0 mm")
        for i in range(len(arr)):
            for j in range(i + 1, len(arr)):
                cos = arr[i] @ arr[j] / (np.linalg.norm(arr[i]) * np.linalg.norm(arr[j]))
                if abs(cos) > 1e-3:
                    raise ValueError(f"axes[{i}] and axes[{j}] must be orthogonal (|cos| <= 1e-3)")
        object.__setattr__(self, "diameter_mm", _non_negative("diameter_mm", self.diameter_mm))
        object.__setattr__(self, "volume_ml", _non_negative("volume_ml", self.volume_ml))
        object.__setattr__(self, "score", _unit_interval("score", self.score))
        if len(self.tracking_id) > 64:
            raise ValueError(
                f"tracking_id must be at most 64 characters, got {len(self.tracking_id)}"
            )

    @classmethod
    def sphere(
        cls,
        kind: FindingKind | str,
        center: Sequence[float],
        diameter_mm: float,
        *,
        score: float | None = None,
        volume_ml: float | None = None,
        tracking_id: str = "",
    ) -> RegionFinding:
        """An ELLIPSOID with equal axes along x, y, z; volume defaults to the sphere's."""
        if diameter_mm <= 0:
            raise ValueError(f"diameter_mm must be > 0, got {diameter_mm}")
        r = diameter_mm / 2.0
        if volume_ml is None:
            volume_ml = 4.0 / 3.0 * math.pi * r**3 / 1000.0
        return cls(
            kind=FindingKind(kind),
            shape=RegionShape.ELLIPSOID,
            center=as_vector("center", center),
            axes=((r, 0.0, 0.0), (0.0, r, 0.0), (0.0, 0.0, r)),
            diameter_mm=diameter_mm,
            volume_ml=volume_ml,
            score=score,
            tracking_id=tracking_id,
        )


@dataclass(frozen=True)
class ClassProbability:
    """Probability of one class, e.g. density category "C" with 0.7."""

    label: str
    probability: float

    def __post_init__(self) -> None:
        if not self.label or len(self.label) > 64:
            raise ValueError("label must have 1 to 64 characters")
        _unit_interval("probability", self.probability)


@dataclass(frozen=True)
class Classification:
    """An image- or side-level classification, e.g. a mammogram per breast.

    Parameters
    ----------
    kind : FindingKind or str
        What was classified (BREAST_ASSESSMENT for mammography).
    laterality : Laterality or str, optional
        Side the result applies to; None for the whole study/image.
    score : float, optional
        Scalar suspicion score in [0, 1].
    density : BreastDensity or str, optional
        Breast composition category A-D.
    probabilities : tuple of ClassProbability
        Per-class probabilities (e.g. of A-D), each in [0, 1].
    sop_instance_uids : tuple of str
        The source images the result is based on; empty means all sources.
    """

    kind: FindingKind
    laterality: Laterality | None = None
    score: float | None = None
    density: BreastDensity | None = None
    probabilities: tuple[ClassProbability, ...] = ()
    sop_instance_uids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FindingKind(self.kind))
        if self.laterality is not None:
            object.__setattr__(self, "laterality", Laterality(self.laterality))
        if self.density is not None:
            object.__setattr__(self, "density", BreastDensity(self.density))
        object.__setattr__(self, "score", _unit_interval("score", self.score))
        labels = [p.label for p in self.probabilities]
        if len(set(labels)) != len(labels):
            raise ValueError(f"probabilities must have distinct labels, got {labels}")
        if self.score is None and self.density is None and not self.probabilities:
            raise ValueError("a Classification needs at least one of score, density, probabilities")


@dataclass(frozen=True)
class Findings:
    """Everything one pipeline run found in one series or study.

    Parameters
    ----------
    kinds : tuple of FindingKind
        The kinds of finding the pipeline looks for (an empty result still says what was
        searched for).
    regions, masks, classifications : tuples
        The findings; each item's kind must be in ``kinds``. At most one mask per kind.
    comparison : Comparison, optional
        Change since a prior study (:mod:`dicomnode.results.changes`), or why no prior was
        compared; None for a pipeline that does not use priors.
    """

    kinds: tuple[FindingKind, ...]
    regions: tuple[RegionFinding, ...] = ()
    masks: tuple[Mask, ...] = ()
    classifications: tuple[Classification, ...] = field(default=())
    comparison: Comparison | None = None

    def __post_init__(self) -> None:
        kinds = tuple(FindingKind(k) for k in self.kinds)
        if not kinds:
            raise ValueError("kinds must name at least 1 finding kind")
        object.__setattr__(self, "kinds", kinds)
        for name in ("regions", "masks", "classifications"):
            items = tuple(getattr(self, name))
            object.__setattr__(self, name, items)
            for item in items:
                if item.kind not in kinds:
                    raise ValueError(f"{name} holds kind {item.kind.value}, not in kinds {kinds}")
        mask_kinds = [m.kind for m in self.masks]
        if len(set(mask_kinds)) != len(mask_kinds):
            raise ValueError("masks must hold at most 1 mask per kind")

    @property
    def is_empty(self) -> bool:
        """True when nothing was found (no region, no non-empty mask, no classification)."""
        return not (self.regions or self.classifications or any(not m.is_empty for m in self.masks))
