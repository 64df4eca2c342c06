"""Rigid registration of two binary masks (lungs, brain) of the same patient at two visits.

Surface to distance map, the classical chamfer approach: the surface voxels of the moving mask
(the prior's), in patient coordinates, are moved by a rotation about their centroid and a
translation; the residual of each is the fixed mask's signed distance (mm) at that point,
minimised by ``scipy.optimize.least_squares`` with a robust (soft L1) loss, so that the parts of
one mask that the other visit's field of view cut off pull little. Masks on ~2.5 mm voxels
register to about 1 mm in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, optimize
from scipy.spatial.transform import Rotation

__all__ = ["RegistrationError", "RigidTransform", "refine_with_images", "register_masks"]


class RegistrationError(ValueError):
    """The masks cannot be registered (empty, or nothing left after the field-of-view cut)."""


@dataclass(frozen=True)
class RigidTransform:
    """A rigid map of patient coordinates: moving (prior) visit -> fixed (current) visit.

    Attributes
    ----------
    matrix : numpy.ndarray
        4x4 homogeneous matrix.
    residual_mm : float
        Median absolute surface distance after registration (a quality figure).
    """

    matrix: np.ndarray
    residual_mm: float = 0.0

    @classmethod
    def identity(cls) -> RigidTransform:
        """No movement."""
        return cls(np.eye(4))

    def apply(self, points_mm: np.ndarray) -> np.ndarray:
        """Map patient points ``[N, 3]`` (or one ``[3]``) of the moving visit to the fixed."""
        points = np.asarray(points_mm, float)
        flat = points.reshape(-1, 3)
        out = flat @ self.matrix[:3, :3].T + self.matrix[:3, 3]
        return out.reshape(points.shape)

    @property
    def rotation_deg(self) -> float:
        """Angle of the rotation (degrees)."""
        return float(np.degrees(Rotation.from_matrix(self.matrix[:3, :3]).magnitude()))


def _spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size along the array axes (slice, row, column) of a (column, row, slice) affine."""
    norms = np.linalg.norm(affine[:3, :3], axis=0)
    return (float(norms[2]), float(norms[1]), float(norms[0]))


def _surface_points(mask: np.ndarray, affine: np.ndarray, limit: int, border: int) -> np.ndarray:
    """Patient coordinates of up to ``limit`` surface voxels, none within ``border`` voxels of
    the array's faces (where a field of view cuts the organ, the cut is not its surface)."""
    surface = mask & ~ndimage.binary_erosion(mask)
    inner = np.zeros_like(surface)
    inner[border:-border, border:-border, border:-border] = True
    kji = np.argwhere(surface & inner)
    if len(kji) == 0:
        raise RegistrationError("a mask has no surface inside its field of view")
    step = max(1, len(kji) // limit)
    ijk = kji[::step, ::-1].astype(float)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def _signed_distance(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """mm to the mask's surface: positive outside, negative inside."""
    spacing = _spacing(affine)
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing)
    inside = ndimage.distance_transform_edt(mask, sampling=spacing)
    return np.asarray(outside - inside, np.float32)


def _moved(params: np.ndarray, points: np.ndarray, centre: np.ndarray) -> np.ndarray:
    rotation = Rotation.from_rotvec(params[:3]).as_matrix()
    return (points - centre) @ rotation.T + centre + params[3:]


def register_masks(
    moving: np.ndarray,
    moving_affine: np.ndarray,
    fixed: np.ndarray,
    fixed_affine: np.ndarray,
    *,
    max_points: int = 4000,
    loss_scale_mm: float = 2.0,
) -> RigidTransform:
    """Find the rigid transform that lays ``moving`` onto ``fixed``.

    Parameters
    ----------
    moving, fixed : numpy.ndarray
        Boolean masks ``[slice, row, column]`` (the prior's, the current's).
    moving_affine, fixed_affine : numpy.ndarray
        4x4 (column, row, slice) index -> patient (LPS, mm) of each.
    max_points : int
        Most surface points used (evenly subsampled).
    loss_scale_mm : float
        Residual beyond which a point counts less (soft L1 loss).

    Returns
    -------
    RigidTransform
        Moving patient coordinates -> fixed patient coordinates.

    Raises
    ------
    RegistrationError
        When a mask is empty or has no surface inside its field of view.
    """
    if not moving.any() or not fixed.any():
        raise RegistrationError("cannot register an empty mask")
    points = _surface_points(moving, moving_affine, max_points, border=2)
    distance = _signed_distance(fixed, fixed_affine)
    to_index = np.linalg.inv(fixed_affine)
    centre = points.mean(axis=0)

    def residuals(params: np.ndarray) -> np.ndarray:
        moved = _moved(params, points, centre)
        ijk = moved @ to_index[:3, :3].T + to_index[:3, 3]
        values = ndimage.map_coordinates(distance, ijk[:, ::-1].T, order=1, cval=np.nan)
        return np.nan_to_num(values, nan=0.0)  # off the fixed grid: no information

    fixed_centre = np.argwhere(fixed)[:, ::-1].mean(axis=0) @ fixed_affine[:3, :3].T
    moving_centre = np.argwhere(moving)[:, ::-1].mean(axis=0) @ moving_affine[:3, :3].T
    shift = fixed_centre + fixed_affine[:3, 3] - moving_centre - moving_affine[:3, 3]
    best: optimize.OptimizeResult | None = None
    for start in (np.zeros(6), np.concatenate([np.zeros(3), shift])):
        result = optimize.least_squares(
            residuals,
            start,
            loss="soft_l1",
            f_scale=loss_scale_mm,
            x_scale=np.array([0.05, 0.05, 0.05, 5.0, 5.0, 5.0]),
            diff_step=1e-3,
        )
        if best is None or result.cost < best.cost:
            best = result
    assert best is not None
    rotation = Rotation.from_rotvec(best.x[:3]).as_matrix()
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = centre - rotation @ centre + best.x[3:]
    residual = float(np.median(np.abs(residuals(best.x))))
    return RigidTransform(matrix, residual)


def refine_with_images(
    moving: np.ndarray,
    moving_affine: np.ndarray,
    moving_mask: np.ndarray,
    fixed: np.ndarray,
    fixed_affine: np.ndarray,
    start: RigidTransform,
    *,
    samples: int = 20000,
    smooth_voxels: float = 1.0,
) -> RigidTransform:
    """Refine a mask registration on the images themselves (same contrast at both visits).

    Least squares of the intensity differences at up to ``samples`` voxels of ``moving_mask``
    (each image smoothed by ``smooth_voxels`` and divided by its median inside the mask, so a
    different scaling of the two visits does not matter), starting from ``start``. The inner
    structure (ventricles, vessels) fixes the rotations that the outline of a nearly
    ellipsoidal organ leaves loose.
    """
    if not moving_mask.any():
        raise RegistrationError("cannot refine on an empty mask")
    kji = np.argwhere(moving_mask)
    kji = kji[:: max(1, len(kji) // samples)]
    smooth_moving = ndimage.gaussian_filter(np.asarray(moving, np.float32), smooth_voxels)
    smooth_fixed = ndimage.gaussian_filter(np.asarray(fixed, np.float32), smooth_voxels)
    values = smooth_moving[tuple(kji.T)]
    scale = float(np.median(values)) or 1.0
    points = kji[:, ::-1].astype(float) @ moving_affine[:3, :3].T + moving_affine[:3, 3]
    to_index = np.linalg.inv(fixed_affine)
    centre = points.mean(axis=0)
    start_points = start.apply(points)

    def residuals(params: np.ndarray) -> np.ndarray:
        moved = _moved(params, start_points, centre)
        ijk = moved @ to_index[:3, :3].T + to_index[:3, 3]
        seen = ndimage.map_coordinates(smooth_fixed, ijk[:, ::-1].T, order=1, cval=np.nan)
        return np.nan_to_num(seen / fixed_scale - values / scale, nan=0.0)

    landed = start.apply(points) @ to_index[:3, :3].T + to_index[:3, 3]
    inside = ndimage.map_coordinates(smooth_fixed, landed[:, ::-1].T, order=1, cval=np.nan)
    fixed_scale = float(np.nanmedian(inside)) or 1.0
    result = optimize.least_squares(
        residuals,
        np.zeros(6),
        loss="soft_l1",
        f_scale=0.1,
        x_scale=np.array([0.05, 0.05, 0.05, 5.0, 5.0, 5.0]),
        diff_step=1e-3,
    )
    rotation = Rotation.from_rotvec(result.x[:3]).as_matrix()
    step = np.eye(4)
    step[:3, :3] = rotation
    step[:3, 3] = centre - rotation @ centre + result.x[3:]
    return RigidTransform(step @ start.matrix, start.residual_mm)
