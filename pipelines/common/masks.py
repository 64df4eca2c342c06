"""Binary masks for the anatomy steps: Otsu's threshold and morphology in millimetres.

Every radius is in mm and every array comes with its voxel size, so that an operation means the
same at any spacing. Erosion and dilation by a ball of radius ``r`` are thresholds of a Euclidean
distance transform (exact balls, one pass whatever ``r``); a per-plane operation gives the
through-plane axis an infinite spacing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "close_in_plane",
    "dilate",
    "erode",
    "fill_holes",
    "largest_components",
    "otsu",
    "plane_spacing",
]

_FAR = 1e6
"""Spacing given to an axis that an in-plane operation must not cross (mm)."""


def otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values``: the histogram split with the largest between-class
    variance; where a gap with no values makes several splits equal, the middle of the gap
    (the first split would sit on the darker class's upper tail)."""
    counts, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts).astype(float)
    total = weight[-1]
    mean = np.cumsum(counts * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean[-1] * weight / total - mean) ** 2 / (weight * (total - weight))
    between = np.nan_to_num(between[:-1], nan=-1.0)
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))
    breaks = np.flatnonzero(np.diff(best) > 1)  # the equal splits of one gap are consecutive
    gap = best[: breaks[0] + 1] if breaks.size else best
    return float((centres[gap[0]] + centres[gap[-1]]) / 2)


def plane_spacing(spacing: Sequence[float], normal_axis: int) -> tuple[float, ...]:
    """``spacing`` with the ``normal_axis`` made so large that distances never cross planes."""
    return tuple(_FAR if axis == normal_axis else float(s) for axis, s in enumerate(spacing))


def erode(mask: np.ndarray, radius_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """Voxels of ``mask`` farther than ``radius_mm`` from its outside (the array's edge
    does not count as outside)."""
    if radius_mm <= 0 or not mask.any():
        return mask.copy()
    distance = ndimage.distance_transform_edt(mask, sampling=spacing)
    return np.asarray(distance > radius_mm)


def dilate(mask: np.ndarray, radius_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """Voxels within ``radius_mm`` of ``mask``."""
    if radius_mm <= 0 or not mask.any():
        return mask.copy()
    distance = ndimage.distance_transform_edt(~mask, sampling=spacing)
    return np.asarray(distance <= radius_mm)


def close_in_plane(
    mask: np.ndarray, radius_mm: float, spacing: Sequence[float], normal_axis: int
) -> np.ndarray:
    """Morphological closing by a disc of ``radius_mm`` in each plane normal to ``normal_axis``.

    Fills concavities (notches) of the outline narrower than the disc. Works on the mask's
    bounding box padded by the radius in-plane, so that the array's edge does not stop the
    dilation (and for speed).
    """
    if radius_mm <= 0 or not mask.any():
        return mask.copy()
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(mask))
    pad = [
        (0, 0) if axis == normal_axis else (int(np.ceil(radius_mm / s)) + 1,) * 2
        for axis, s in enumerate(spacing)
    ]
    padded = np.pad(mask[box], pad)
    flat = plane_spacing(spacing, normal_axis)
    closed = erode(dilate(padded, radius_mm, flat), radius_mm, flat)
    inner = tuple(slice(lo, closed.shape[axis] - hi) for axis, (lo, hi) in enumerate(pad))
    out = mask.copy()
    out[box] |= closed[inner]
    return out


def fill_holes(mask: np.ndarray, plane_axis: int | None = None) -> np.ndarray:
    """Fill the holes of ``mask`` in 3-D, and also in each plane normal to ``plane_axis``.

    A per-plane fill closes cavities that are open in 3-D through another plane (a vessel
    leaving the lung, a ventricle reaching the edge of the field of view).
    """
    filled = np.asarray(ndimage.binary_fill_holes(mask))
    if plane_axis is not None:
        structure = np.zeros((3, 3, 3), bool)
        index: list[slice | int] = [slice(None)] * 3
        index[plane_axis] = 1
        structure[tuple(index)] = ndimage.generate_binary_structure(2, 1)
        filled |= np.asarray(ndimage.binary_fill_holes(mask, structure=structure))
    return filled


def largest_components(
    mask: np.ndarray, count: int, *, min_voxels: int = 1, exclude: np.ndarray | None = None
) -> list[np.ndarray]:
    """The ``count`` largest components (faces connected) of ``mask``, at least ``min_voxels``.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean array (any number of dimensions).
    count : int
        Most components returned, largest first.
    min_voxels : int
        Smallest component returned.
    exclude : numpy.ndarray, optional
        Boolean volume; components touching it are left out (e.g. the air around the body).
    """
    labels, n = ndimage.label(mask)
    if n == 0:
        return []
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    if exclude is not None:
        sizes[np.unique(labels[exclude & mask])] = 0
    order = np.argsort(-sizes, kind="stable")[:count]
    return [labels == label for label in order if sizes[label] >= max(1, min_voxels)]
