"""The lungs of a chest CT: the region in which a nodule may be reported.

Classical and fast: on a coarse copy of the CT (about 2.5 mm voxels), air below ``air_hu``
that does not touch the edge of the axial field of view (the air around the body, the table)
is labelled; the two largest components of at least ``min_lung_ml`` are the lungs (lungs that
touch each other, or the trachea joining them, make one component: that is fine). Their holes
(vessels, nodules inside the lung) are filled, then a *border repair* closes each lung with a
disc of ``repair_mm`` in every axial plane: a nodule touching the chest wall makes a notch in
the air mask, and a closing fills notches up to the disc's diameter, so juxtapleural nodules
up to about 2 x ``repair_mm`` stay inside. Each lung is closed on its own so that the
mediastinum between them is not bridged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from dicomnode.pipeline import InputRefused
from pipelines.common.masks import close_in_plane, fill_holes, largest_components

__all__ = ["LungMask", "lung_mask"]


@dataclass(frozen=True)
class LungMask:
    """A lung mask on a coarse grid of the source volume.

    Attributes
    ----------
    mask : numpy.ndarray
        Boolean ``[slice, row, column]`` on the coarse grid.
    affine : numpy.ndarray
        4x4 coarse (column, row, slice) index -> patient (LPS, mm).
    """

    mask: np.ndarray
    affine: np.ndarray

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the mask's axes (slice, row, column)."""
        norms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(norms[2]), float(norms[1]), float(norms[0]))

    @property
    def volume_ml(self) -> float:
        """Volume of the mask in mL."""
        voxel = float(abs(np.linalg.det(self.affine[:3, :3])))
        return float(self.mask.sum()) * voxel / 1000.0

    @cached_property
    def _outside_mm(self) -> np.ndarray:
        from scipy import ndimage

        return np.asarray(ndimage.distance_transform_edt(~self.mask, sampling=self.spacing))

    def distance_mm(self, points_mm: np.ndarray) -> np.ndarray:
        """Distance (mm) from each patient point ``[N, 3]`` to the mask; 0 inside, inf off the
        grid."""
        points = np.asarray(points_mm, float).reshape(-1, 3)
        homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1)
        index = np.rint(homogeneous @ np.linalg.inv(self.affine).T)[:, :3].astype(int)
        kji = index[:, ::-1]
        inside = np.all((kji >= 0) & (kji < np.asarray(self.mask.shape)), axis=1)
        out = np.full(len(points), np.inf)
        out[inside] = self._outside_mm[tuple(kji[inside].T)]
        return out

    def contains(self, points_mm: np.ndarray, margin_mm: float = 0.0) -> np.ndarray:
        """Whether each patient point ``[N, 3]`` lies in the mask dilated by ``margin_mm``."""
        return self.distance_mm(points_mm) <= margin_mm


def _factors(spacing: np.ndarray, voxel_mm: float) -> tuple[int, int, int]:
    values = [max(1, int(round(voxel_mm / float(s)))) for s in spacing]
    return (values[0], values[1], values[2])


def _coarse(hu: np.ndarray, affine: np.ndarray, voxel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Block means of ``hu`` ``[slice, row, column]`` near ``voxel_mm``, and their affine."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)[::-1]  # slice, row, column
    factors = _factors(spacing, voxel_mm)
    if factors == (1, 1, 1):
        return np.asarray(hu, np.float32), affine
    tensor = torch.from_numpy(np.ascontiguousarray(hu, dtype=np.float32))
    coarse = F.avg_pool3d(tensor[None, None], factors, ceil_mode=True)[0, 0].numpy()
    scale = np.eye(4)
    for column, factor in zip((2, 1, 0), factors, strict=True):  # affine's (i, j, k) columns
        scale[column, column] = factor
        scale[column, 3] = (factor - 1) / 2
    return coarse, affine @ scale


def _axial_axis(affine: np.ndarray) -> int:
    """The array axis (0 slice, 1 row, 2 column) closest to the patient's head-feet axis."""
    along_z = np.abs(affine[2, :3]) / np.linalg.norm(affine[:3, :3], axis=0)
    return int(2 - np.argmax(along_z))


def _field_edge(shape: tuple[int, ...], normal_axis: int) -> np.ndarray:
    """The voxels on the edge of each plane normal to ``normal_axis``."""
    edge = np.zeros(shape, bool)
    for axis in range(3):
        if axis == normal_axis:
            continue
        for end in (0, -1):
            index: list[slice | int] = [slice(None)] * 3
            index[axis] = end
            edge[tuple(index)] = True
    return edge


def lung_mask(
    hu: np.ndarray,
    affine: np.ndarray,
    *,
    air_hu: float = -400.0,
    voxel_mm: float = 2.5,
    min_lung_ml: float = 50.0,
    repair_mm: float = 15.0,
) -> LungMask:
    """Find the lungs of a CT volume.

    Parameters
    ----------
    hu : numpy.ndarray
        The CT in HU, ``[slice, row, column]``.
    affine : numpy.ndarray
        4x4 (column, row, slice) index -> patient (LPS, mm) of ``hu``.
    air_hu : float
        Voxels below this are air (lung parenchyma is about -850 HU, soft tissue above -100).
    voxel_mm : float
        Approximate voxel size of the coarse grid the mask is made on (speed: a 512 x 512 x 300
        CT becomes about 128 x 128 x 150).
    min_lung_ml : float
        Smallest air component taken for a lung (smaller ones: bowel gas, oesophagus).
    repair_mm : float
        Radius of the in-plane closing of each lung: notches of juxtapleural nodules up to about
        twice this diameter are filled.

    Returns
    -------
    LungMask

    Raises
    ------
    InputRefused
        When no air region of ``min_lung_ml`` lies inside the body.
    """
    coarse, coarse_affine = _coarse(hu, affine, voxel_mm)
    spacing = tuple(float(s) for s in np.linalg.norm(coarse_affine[:3, :3], axis=0)[::-1])
    voxel_ml = float(np.prod(spacing)) / 1000.0
    normal = _axial_axis(coarse_affine)
    air = coarse < air_hu
    lungs = largest_components(
        air,
        2,
        min_voxels=int(np.ceil(min_lung_ml / voxel_ml)),
        exclude=_field_edge(air.shape, normal),
    )
    if not lungs:
        raise InputRefused(
            f"no lungs found in the CT (no air region of {min_lung_ml:g} mL or more inside "
            "the body): not a chest CT, or not in HU"
        )
    mask = np.zeros(air.shape, bool)
    for lung in lungs:
        mask |= close_in_plane(fill_holes(lung, normal), repair_mm, spacing, normal)
    return LungMask(fill_holes(mask, normal), coarse_affine)
