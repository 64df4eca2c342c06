"""Orientation and resampling between a DICOM volume and a network's working grid.

The *canonical* array is indexed ``[x, y, z]`` (MONAI's channel-first spatial order) with the
axes ordered and flipped to the bundle's ``Orientationd`` axcodes (e.g. ``RAS``), like
MONAI's ``Orientationd`` on a NIfTI; the *working* grid is the canonical one resampled to the
bundle's ``Spacingd`` pixdim. :class:`WorkingGrid` keeps what is needed to map indices and
arrays back to the source volume and to patient coordinates (LPS, mm).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dicomnode.pipeline import InputRefused
from pipelines.common.dicomio import Volume

__all__ = ["WorkingGrid", "resize", "to_working_grid"]

_LPS = "LPS"
_OPPOSITE = {"R": "L", "A": "P", "I": "S", "L": "L", "P": "P", "S": "S"}


def _axis_signs(axcodes: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """For each canonical axis: the patient axis (0=x L, 1=y P, 2=z S) and its sign."""
    codes = axcodes.upper()
    if len(codes) != 3 or sorted(_OPPOSITE[c] for c in codes) != sorted(_LPS):
        raise ValueError(f"axcodes must name 3 distinct patient axes like 'RAS', got {axcodes!r}")
    axes = tuple(_LPS.index(_OPPOSITE[c]) for c in codes)
    signs = tuple(1 if c in _LPS else -1 for c in codes)
    return axes, signs


def resize(array: torch.Tensor, shape: Sequence[int], *, mode: str = "trilinear") -> torch.Tensor:
    """Resample a ``[X, Y, Z]`` tensor to ``shape`` (half-pixel aligned, like MONAI Resize)."""
    if tuple(array.shape) == tuple(shape):
        return array
    kwargs = {"align_corners": False} if mode != "nearest" else {}
    out = F.interpolate(array[None, None].float(), size=tuple(shape), mode=mode, **kwargs)
    return out[0, 0]


@dataclass(frozen=True)
class WorkingGrid:
    """How the working array relates to the source volume.

    Attributes
    ----------
    source_affine : numpy.ndarray
        4x4 (column, row, slice) index -> patient of the source volume.
    source_shape : tuple of int
        ``(slices, rows, columns)`` of the source volume.
    permutation : tuple of int
        Source axis (0 column, 1 row, 2 slice) of each canonical axis.
    flips : tuple of bool
        Whether each canonical axis runs against its source axis.
    canonical_shape : tuple of int
        Shape of the canonical array.
    shape : tuple of int
        Shape of the working array.
    spacing : tuple of float
        Voxel size of the working array in mm, per axis.
    """

    source_affine: np.ndarray
    source_shape: tuple[int, int, int]
    permutation: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    canonical_shape: tuple[int, int, int]
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @property
    def scale(self) -> np.ndarray:
        """Canonical voxels per working voxel, per axis."""
        return np.asarray(self.canonical_shape, float) / np.asarray(self.shape, float)

    def to_canonical_index(self, points: np.ndarray) -> np.ndarray:
        """Working (fractional) indices ``[N, 3]`` -> canonical indices."""
        return (np.asarray(points, float) + 0.5) * self.scale - 0.5

    def to_source_index(self, points: np.ndarray) -> np.ndarray:
        """Working indices ``[N, 3]`` -> source (column, row, slice) indices."""
        canonical = self.to_canonical_index(points)
        source = np.zeros_like(canonical)
        sizes = np.asarray(self.canonical_shape) - 1
        for axis, (src, flip) in enumerate(zip(self.permutation, self.flips, strict=True)):
            values = sizes[axis] - canonical[:, axis] if flip else canonical[:, axis]
            source[:, src] = values
        return source

    def to_patient(self, points: np.ndarray) -> np.ndarray:
        """Working indices ``[N, 3]`` -> patient coordinates (LPS, mm)."""
        source = self.to_source_index(points)
        homogeneous = np.concatenate([source, np.ones((len(source), 1))], axis=1)
        return (homogeneous @ self.source_affine.T)[:, :3]

    def from_patient(self, points: np.ndarray) -> np.ndarray:
        """Patient coordinates ``[N, 3]`` -> working (fractional) indices."""
        pts = np.asarray(points, float).reshape(-1, 3)
        homogeneous = np.concatenate([pts, np.ones((len(pts), 1))], axis=1)
        source = (homogeneous @ np.linalg.inv(self.source_affine).T)[:, :3]
        sizes = np.asarray(self.canonical_shape) - 1
        canonical = np.zeros_like(source)
        for axis, (src, flip) in enumerate(zip(self.permutation, self.flips, strict=True)):
            canonical[:, axis] = sizes[axis] - source[:, src] if flip else source[:, src]
        return (canonical + 0.5) / self.scale - 0.5

    def canonical_from_source(self, array: np.ndarray) -> np.ndarray:
        """A source-indexed ``[slice, row, column]`` array in canonical orientation."""
        out = np.transpose(array, (2, 1, 0)).transpose(self.permutation)
        flip_axes = tuple(i for i, f in enumerate(self.flips) if f)
        return np.flip(out, flip_axes) if flip_axes else out

    def source_from_canonical(self, array: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`canonical_from_source`: canonical -> ``[slice, row, column]``."""
        flip_axes = tuple(i for i, f in enumerate(self.flips) if f)
        out = np.flip(array, flip_axes) if flip_axes else array
        out = np.transpose(out, np.argsort(self.permutation))
        return np.ascontiguousarray(np.transpose(out, (2, 1, 0)))

    def source_from_working(self, prob: torch.Tensor) -> np.ndarray:
        """A working-grid map (e.g. probabilities) interpolated back to the source grid."""
        canonical = resize(prob, self.canonical_shape).cpu().numpy()
        return self.source_from_canonical(canonical)


def _orientation(affine: np.ndarray, axcodes: str) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    axes, signs = _axis_signs(axcodes)
    directions = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    dominant = [int(np.argmax(np.abs(directions[:, src]))) for src in range(3)]
    if sorted(dominant) != [0, 1, 2]:
        raise InputRefused("oblique image orientation: no patient axis per image axis")
    permutation, flips = [], []
    for patient_axis, sign in zip(axes, signs, strict=True):
        src = dominant.index(patient_axis)
        permutation.append(src)
        flips.append(bool(np.sign(directions[patient_axis, src]) != sign))
    return tuple(permutation), tuple(flips)


def to_working_grid(
    volume: Volume,
    *,
    axcodes: str = "RAS",
    pixdim: Sequence[float] | None = None,
    device: str = "cpu",
) -> tuple[torch.Tensor, WorkingGrid]:
    """Orient ``volume`` to ``axcodes`` and resample it to ``pixdim`` (mm per canonical axis).

    Returns
    -------
    tensor : torch.Tensor
        float32 ``[X, Y, Z]`` on ``device``.
    grid : WorkingGrid
        The mapping back to the source.
    """
    affine = volume.affine()
    permutation, flips = _orientation(affine, axcodes)
    source_spacing = np.linalg.norm(affine[:3, :3], axis=0)
    canonical_spacing = source_spacing[list(permutation)]
    sketch = WorkingGrid(
        affine,
        volume.geometry.shape,
        permutation,  # type: ignore[arg-type]
        flips,  # type: ignore[arg-type]
        (1, 1, 1),
        (1, 1, 1),
        (1.0, 1.0, 1.0),
    )
    canonical = np.ascontiguousarray(sketch.canonical_from_source(volume.array))
    tensor = torch.from_numpy(canonical).to(device)
    if pixdim is None:
        shape = tuple(int(n) for n in canonical.shape)
    else:
        sizes = np.asarray(canonical.shape) * canonical_spacing / np.asarray(pixdim, float)
        shape = tuple(max(1, int(round(float(n)))) for n in sizes)
    working_spacing = canonical_spacing * np.asarray(canonical.shape) / np.asarray(shape)
    grid = WorkingGrid(
        source_affine=affine,
        source_shape=volume.geometry.shape,
        permutation=permutation,  # type: ignore[arg-type]
        flips=flips,  # type: ignore[arg-type]
        canonical_shape=tuple(int(n) for n in canonical.shape),  # type: ignore[arg-type]
        shape=shape,  # type: ignore[arg-type]
        spacing=tuple(float(s) for s in working_spacing),  # type: ignore[arg-type]
    )
    return resize(tensor, shape), grid
