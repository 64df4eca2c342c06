"""Phantoms for the anatomy tests: a juxtapleural nodule, painted distractors."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
from pydicom.dataset import Dataset

from dicomnode.synthetic import ChestCT, NoduleSpec, chest_ct

#: A chest CT small enough for the pipeline tests (240 mm field of view, 2.5 mm pixels).
SMALL_CT = {"shape": (96, 96, 40), "pixel_spacing_mm": 2.5}


def lung_edge_x(ct: ChestCT, side: int) -> tuple[float, float, float]:
    """The lateral edge of one lung (``side`` +1: patient left, -1: right) on the middle slice,
    on the row through the lungs' centres: ``(x, y, z)`` in mm."""
    k = ct.geometry.shape[0] // 2
    y_row = ct.geometry.patient_to_index(0.0, -5.0, 0.0)[1]
    j = int(round(y_row))
    row = ct.volume[k, j]
    xs = np.asarray([ct.geometry.index_to_patient(i, j, k)[0] for i in range(row.size)])
    air = (row < -400) & (np.sign(xs) == side) & (np.abs(xs) < 0.95 * np.abs(xs).max())
    x = float(xs[air][np.argmax(np.abs(xs[air]))])
    _, y, z = ct.geometry.index_to_patient(0, j, k)
    return x, float(y), float(z)


def juxtapleural_ct(seed: int, diameters: tuple[float, float] = (24.0, 12.0)) -> ChestCT:
    """A CT with one nodule against the lateral chest wall of each lung.

    Each nodule's centre lies 0.3 diameters inside the lung's edge, so a fifth of the nodule
    sits in the wall: the nodule touches the pleura and notches the air mask.
    """
    plain = chest_ct(seed, nodules=[], **SMALL_CT)  # type: ignore[arg-type]
    specs = []
    for side, diameter in zip((1, -1), diameters, strict=True):
        x, y, z = lung_edge_x(plain, side)
        specs.append(NoduleSpec((x - side * 0.3 * diameter, y, z), diameter))
    return chest_ct(seed, nodules=specs, **SMALL_CT)  # type: ignore[arg-type]


def repaint(datasets: list[Dataset], paint: Callable[[int, np.ndarray], None]) -> list[Dataset]:
    """Deep copies of single-frame ``datasets`` whose stored pixels ``paint(index, pixels)``
    changed in place (``Dataset.copy()`` would share the elements with the originals)."""
    out = []
    for index, ds in enumerate(datasets):
        pixels = ds.pixel_array.copy()
        paint(index, pixels)
        changed = copy.deepcopy(ds)
        changed.PixelData = np.ascontiguousarray(pixels).tobytes()
        out.append(changed)
    return out


def ball_painter(
    centre_index: tuple[float, float, float],
    radius_voxels: tuple[float, float, float],
    value: int,
) -> Callable[[int, np.ndarray], None]:
    """Paint stored ``value`` over an ellipsoid given in (column, row, slice) voxels; the
    datasets' index is the slice (InstanceNumber - 1)."""
    ci, cj, ck = centre_index
    ri, rj, rk = radius_voxels

    def paint(k: int, pixels: np.ndarray) -> None:
        dz = ((k - ck) / rk) ** 2
        if dz > 1:
            return
        jj, ii = np.mgrid[: pixels.shape[0], : pixels.shape[1]]
        inside = ((ii - ci) / ri) ** 2 + ((jj - cj) / rj) ** 2 + dz <= 1
        pixels[inside] = value

    return paint
