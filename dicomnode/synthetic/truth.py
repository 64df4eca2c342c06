"""Ground truth of synthetic studies: plain dataclasses and enums, no pydicom.

Index convention (used everywhere in :mod:`dicomnode.synthetic`): a volume is a numpy array
indexed ``volume[k, j, i]`` where ``i`` is the column index, ``j`` the row index and ``k`` the
slice index (``k = InstanceNumber - 1``).  The DICOM patient coordinate (LPS, mm) of the centre
of voxel ``(i, j, k)`` is::

    P = IPP[k] + i * PixelSpacing[1] * IOP[0:3] + j * PixelSpacing[0] * IOP[3:6]

with ``IPP[k] = origin + k * slice_spacing * slice_direction``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DensityClass",
    "Laterality",
    "Lesion",
    "Mass",
    "MammoTruth",
    "Nodule",
    "NoduleAttachment",
    "NoduleKind",
    "NoduleMargin",
    "PixelPoint",
    "Projection",
    "View",
    "VolumeGeometry",
]

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class VolumeGeometry:
    """Where the voxels of a stack of parallel slices lie in patient space.

    Parameters
    ----------
    shape : tuple of int
        ``(slices, rows, columns)``: the shape of the volume array ``[k, j, i]``.
    origin_mm : tuple of float
        Patient coordinate (mm) of the centre of voxel ``(0, 0, 0)``: ImagePositionPatient of the
        first instance.
    row_direction : tuple of float
        Unit vector along which the column index ``i`` grows (ImageOrientationPatient[0:3]).
    column_direction : tuple of float
        Unit vector along which the row index ``j`` grows (ImageOrientationPatient[3:6]).
    slice_direction : tuple of float
        Unit vector along which the slice index ``k`` grows; the cross product of the two above
        or its opposite (reverse stacking order).
    pixel_spacing_mm : tuple of float
        DICOM PixelSpacing: ``(distance between rows, distance between columns)``.
    slice_spacing_mm : float
        Distance between the centres of adjacent slices (SpacingBetweenSlices).
    slice_thickness_mm : float
        Nominal reconstructed slice thickness (SliceThickness).
    """

    shape: tuple[int, int, int]
    origin_mm: Vec3
    row_direction: Vec3
    column_direction: Vec3
    slice_direction: Vec3
    pixel_spacing_mm: tuple[float, float]
    slice_spacing_mm: float
    slice_thickness_mm: float

    def affine(self) -> np.ndarray:
        """Return the 4×4 matrix mapping ``(i, j, k, 1)`` to ``(x, y, z, 1)`` in mm."""
        matrix = np.eye(4)
        matrix[:3, 0] = np.asarray(self.row_direction) * self.pixel_spacing_mm[1]
        matrix[:3, 1] = np.asarray(self.column_direction) * self.pixel_spacing_mm[0]
        matrix[:3, 2] = np.asarray(self.slice_direction) * self.slice_spacing_mm
        matrix[:3, 3] = self.origin_mm
        return matrix

    def index_to_patient(self, i: float, j: float, k: float) -> Vec3:
        """Return the patient coordinate (mm) of the (possibly fractional) index ``(i, j, k)``."""
        x, y, z, _ = self.affine() @ np.array([i, j, k, 1.0])
        return (float(x), float(y), float(z))

    def patient_to_index(self, x: float, y: float, z: float) -> Vec3:
        """Return the fractional index ``(i, j, k)`` of the patient coordinate ``(x, y, z)``."""
        i, j, k, _ = np.linalg.solve(self.affine(), np.array([x, y, z, 1.0]))
        return (float(i), float(j), float(k))

    def slice_position(self, k: int) -> Vec3:
        """Return ImagePositionPatient of slice ``k``."""
        return self.index_to_patient(0.0, 0.0, float(k))

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in mm³ (slice spacing times pixel area)."""
        return self.pixel_spacing_mm[0] * self.pixel_spacing_mm[1] * self.slice_spacing_mm

    @property
    def image_orientation(self) -> tuple[float, ...]:
        """ImageOrientationPatient: row direction then column direction."""
        return (*self.row_direction, *self.column_direction)


class NoduleKind(enum.StrEnum):
    """Radiological type of a lung nodule."""

    SOLID = "solid"
    PART_SOLID = "part_solid"
    GROUND_GLASS = "ground_glass"


class NoduleMargin(enum.StrEnum):
    """Shape of a nodule's margin."""

    SMOOTH = "smooth"
    LOBULATED = "lobulated"
    SPICULATED = "spiculated"


class NoduleAttachment(enum.StrEnum):
    """What a nodule touches: nothing, the pleura (chest wall) or a vessel."""

    NONE = "none"
    PLEURA = "pleura"
    VESSEL = "vessel"


@dataclass(frozen=True)
class Nodule:
    """A synthetic lung nodule.

    Parameters
    ----------
    centre_mm : tuple of float
        Centre in patient coordinates (LPS, mm).
    diameter_mm : float
        Outer diameter (for part-solid nodules: of the ground-glass halo).
    kind : NoduleKind
        Solid, part-solid or ground-glass.
    centre_index : tuple of float
        Centre as fractional voxel index ``(i, j, k)``; see the module docstring.
    solid_diameter_mm : float
        Diameter of the solid part (``diameter_mm`` for solid nodules, 0 for ground-glass).
    margin : NoduleMargin
        Smooth, lobulated or spiculated (spicules reach beyond ``diameter_mm``).
    attachment : NoduleAttachment
        What the nodule touches.
    """

    centre_mm: Vec3
    diameter_mm: float
    kind: NoduleKind
    centre_index: Vec3
    solid_diameter_mm: float
    margin: NoduleMargin = NoduleMargin.SMOOTH
    attachment: NoduleAttachment = NoduleAttachment.NONE

    @property
    def voxel(self) -> tuple[int, int, int]:
        """The voxel ``(i, j, k)`` that contains the centre."""
        i, j, k = (round(value) for value in self.centre_index)
        return (i, j, k)

    @property
    def volume_ml(self) -> float:
        """Volume of the (outer) sphere in mL."""
        return math.pi * self.diameter_mm**3 / 6.0 / 1000.0


@dataclass(frozen=True)
class Lesion:
    """One brain lesion; its voxels are ``labels == label`` in the study's label volume.

    Parameters
    ----------
    label : int
        Label value (1, 2, …) in the label volume.
    centre_mm : tuple of float
        Centroid of the lesion's voxels in patient coordinates (mm).
    centre_index : tuple of float
        Centroid as fractional index ``(i, j, k)``.
    voxel_count : int
        Number of voxels of the lesion.
    volume_ml : float
        ``voxel_count`` times the voxel volume, in mL.
    """

    label: int
    centre_mm: Vec3
    centre_index: Vec3
    voxel_count: int
    volume_ml: float


class Laterality(enum.StrEnum):
    """Breast side."""

    RIGHT = "R"
    LEFT = "L"


class Projection(enum.StrEnum):
    """Mammographic projection (ViewPosition)."""

    CC = "CC"
    MLO = "MLO"


class View(enum.StrEnum):
    """One of the four screening views."""

    RCC = "RCC"
    LCC = "LCC"
    RMLO = "RMLO"
    LMLO = "LMLO"

    @property
    def laterality(self) -> Laterality:
        """Breast side of the view."""
        return Laterality(self.value[0])

    @property
    def projection(self) -> Projection:
        """Projection of the view."""
        return Projection(self.value[1:])


class DensityClass(enum.StrEnum):
    """BI-RADS breast composition (A: almost entirely fatty … D: extremely dense)."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"

    @property
    def fraction_range(self) -> tuple[float, float]:
        """Range of fibroglandular fraction that this generator maps to the class."""
        index = "ABCD".index(self.value)
        return (0.25 * index, 0.25 * (index + 1))

    @classmethod
    def from_fraction(cls, fraction: float) -> DensityClass:
        """Return the class of a fibroglandular fraction in [0, 1]."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fibroglandular fraction must lie in [0, 1], got {fraction}")
        return cls("ABCD"[min(int(fraction * 4.0), 3)])


@dataclass(frozen=True)
class PixelPoint:
    """A position in an image: fractional ``row`` and ``column`` index."""

    row: float
    column: float


@dataclass(frozen=True)
class Mass:
    """A synthetic breast mass, seen in the CC and MLO views of its breast.

    Parameters
    ----------
    laterality : Laterality
        Breast that holds the mass.
    diameter_mm : float
        Diameter of the mass.
    positions : dict of View to PixelPoint
        Centre of the mass in each view of its breast.
    """

    laterality: Laterality
    diameter_mm: float
    positions: dict[View, PixelPoint] = field(default_factory=dict)


@dataclass(frozen=True)
class MammoTruth:
    """Ground truth of a synthetic mammography study.

    Parameters
    ----------
    density : DensityClass
        Breast composition class (the same for both breasts).
    fibroglandular_fraction : dict of View to float
        Fraction of the breast area (pectoral muscle excluded) covered by dense tissue, per view.
    masses : tuple of Mass
        Masses, with their positions per view.
    """

    density: DensityClass
    fibroglandular_fraction: dict[View, float]
    masses: tuple[Mass, ...] = ()

    def has_mass(self, laterality: Laterality | str) -> bool:
        """Return True when the breast ``laterality`` holds at least one mass."""
        side = Laterality(laterality)
        return any(mass.laterality is side for mass in self.masses)
