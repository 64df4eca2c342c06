"""Where a volume's voxels lie in the patient coordinate system (no pydicom needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Vector3", "VolumeGeometry", "as_vector"]

Vector3 = tuple[float, float, float]
"""A point or vector in patient coordinates (LPS, mm)."""


def as_vector(name: str, value: Sequence[float]) -> Vector3:
    """``value`` as a finite 3-vector; ValueError naming ``name`` otherwise."""
    if len(value) != 3:
        raise ValueError(f"{name} must have 3 components (x, y, z in mm), got {len(value)}")
    out = (float(value[0]), float(value[1]), float(value[2]))
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} must be finite, got {out}")
    return out


@dataclass(frozen=True)
class VolumeGeometry:
    """Where the voxels of a volume lie: one entry per slice, in the volume's slice order.

    Parameters
    ----------
    sop_instance_uids : tuple of str
        SOP Instance UID of the source instance holding each slice. For a multi-frame source
        every entry is that instance's UID.
    positions : tuple of Vector3
        Image Position (Patient) of each slice: centre of its first voxel, in mm.
    orientation : tuple of 6 float
        Image Orientation (Patient): row direction cosines, then column direction cosines.
    pixel_spacing : tuple of 2 float
        Pixel Spacing (row spacing, column spacing) in mm, as in DICOM.
    rows, columns : int
        Size of each slice.
    frame_numbers : tuple of int, optional
        For a multi-frame source: the 1-based frame number of each slice.
    frame_of_reference_uid : str
        Frame of Reference UID shared by all slices.
    """

    sop_instance_uids: tuple[str, ...]
    positions: tuple[Vector3, ...]
    orientation: tuple[float, float, float, float, float, float]
    pixel_spacing: tuple[float, float]
    rows: int
    columns: int
    frame_of_reference_uid: str
    frame_numbers: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        n = len(self.sop_instance_uids)
        if n < 1:
            raise ValueError("sop_instance_uids must name at least 1 slice")
        if len(self.positions) != n:
            raise ValueError(
                f"positions must have {n} entries (one per slice), got {len(self.positions)}"
            )
        object.__setattr__(
            self,
            "positions",
            tuple(as_vector(f"positions[{i}]", p) for i, p in enumerate(self.positions)),
        )
        if len(self.orientation) != 6:
            raise ValueError(f"orientation must have 6 values, got {len(self.orientation)}")
        row, col = np.asarray(self.orientation[:3]), np.asarray(self.orientation[3:])
        if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3:
            raise ValueError("orientation must hold two unit vectors (tolerance 1e-3)")
        if abs(float(row @ col)) > 1e-3:
            raise ValueError(
                "orientation row and column vectors must be orthogonal (tolerance 1e-3)"
            )
        if len(self.pixel_spacing) != 2 or min(self.pixel_spacing) <= 0:
            raise ValueError(f"pixel_spacing must be 2 values > 0 mm, got {self.pixel_spacing}")
        if self.rows < 1 or self.columns < 1:
            raise ValueError(f"rows and columns must be >= 1, got {self.rows}x{self.columns}")
        if not self.frame_of_reference_uid:
            raise ValueError("frame_of_reference_uid must not be empty")
        if self.frame_numbers is not None:
            if len(self.frame_numbers) != n:
                raise ValueError(
                    f"frame_numbers must have {n} entries, got {len(self.frame_numbers)}"
                )
            if min(self.frame_numbers) < 1:
                raise ValueError("frame_numbers must be >= 1 (DICOM frame numbers are 1-based)")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, rows, columns) of a volume with this geometry."""
        return (len(self.sop_instance_uids), self.rows, self.columns)

    @property
    def normal(self) -> np.ndarray:
        """Unit normal of the slice planes (row direction x column direction)."""
        return np.cross(self.orientation[:3], self.orientation[3:])

    def index_to_patient(self, slice_index: float, row: float, column: float) -> Vector3:
        """Patient coordinates (mm) of voxel (slice_index, row, column); slice must be integral."""
        origin = np.asarray(self.positions[int(round(slice_index))])
        row_dir, col_dir = np.asarray(self.orientation[:3]), np.asarray(self.orientation[3:])
        point = (
            origin
            + row_dir * self.pixel_spacing[1] * column
            + col_dir * self.pixel_spacing[0] * row
        )
        return (float(point[0]), float(point[1]), float(point[2]))

    def patient_to_index(self, point: Sequence[float]) -> tuple[int, float, float]:
        """Nearest slice and in-plane (row, column) of a point in patient coordinates.

        Works for tilted and irregularly spaced slices: the slice is the plane closest to the
        point, the row and column are measured in that plane.
        """
        p = np.asarray(as_vector("point", point))
        offsets = p - np.asarray(self.positions)
        k = int(np.argmin(np.abs(offsets @ self.normal)))
        row_dir, col_dir = np.asarray(self.orientation[:3]), np.asarray(self.orientation[3:])
        column = float(offsets[k] @ row_dir) / self.pixel_spacing[1]
        row = float(offsets[k] @ col_dir) / self.pixel_spacing[0]
        return k, row, column
