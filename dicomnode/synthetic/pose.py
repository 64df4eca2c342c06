"""Rigid pose differences between two visits of one synthetic patient.

A follow-up study is rendered in the *anatomy* frame (the prior's patient coordinates) and then
moved by a :class:`RigidPose`: a point ``a`` of the anatomy lies at ``R a + t`` in the
follow-up's patient coordinates (LPS, mm), the rotation about ``centre_mm``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from dicomnode.synthetic.truth import VolumeGeometry

__all__ = ["RigidPose", "repose_volume"]

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class RigidPose:
    """Where the anatomy of a visit lies relative to the first visit.

    Parameters
    ----------
    rotation_deg : tuple of float
        Rotation about the patient x, y, z axes (extrinsic, in that order), degrees; at most
        15 each (a patient lying slightly differently, not a different position).
    translation_mm : tuple of float
        Shift in patient coordinates (mm), at most 50 each.
    centre_mm : tuple of float
        The point that the rotation leaves in place.
    """

    rotation_deg: Vec3 = (0.0, 0.0, 0.0)
    translation_mm: Vec3 = (0.0, 0.0, 0.0)
    centre_mm: Vec3 = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if max(abs(v) for v in self.rotation_deg) > 15.0:
            raise ValueError(f"rotation_deg must lie within ±15 degrees, got {self.rotation_deg}")
        if max(abs(v) for v in self.translation_mm) > 50.0:
            raise ValueError(f"translation_mm must lie within ±50 mm, got {self.translation_mm}")

    @property
    def matrix(self) -> np.ndarray:
        """4x4 homogeneous matrix: anatomy (prior patient) -> this visit's patient coordinates."""
        rotation = Rotation.from_euler("xyz", self.rotation_deg, degrees=True).as_matrix()
        centre = np.asarray(self.centre_mm, float)
        out = np.eye(4)
        out[:3, :3] = rotation
        out[:3, 3] = centre - rotation @ centre + np.asarray(self.translation_mm, float)
        return out

    def apply(self, point_mm: Vec3) -> Vec3:
        """Where the anatomy point ``point_mm`` lies in this visit."""
        x, y, z, _ = self.matrix @ np.append(np.asarray(point_mm, float), 1.0)
        return (float(x), float(y), float(z))


def repose_volume(
    image: np.ndarray, geometry: VolumeGeometry, pose: RigidPose, fill: float
) -> np.ndarray:
    """Resample ``image`` (``[k, j, i]``, rendered in the anatomy frame on ``geometry``) as the
    scanner sees the anatomy moved by ``pose`` (trilinear; ``fill`` outside)."""
    affine = geometry.affine()
    # output index (i, j, k) -> patient -> anatomy -> input index, then in [k, j, i] order
    to_input = np.linalg.inv(affine) @ np.linalg.inv(pose.matrix) @ affine
    flip = np.eye(4)[[2, 1, 0, 3]]
    matrix = flip @ to_input @ flip
    return ndimage.affine_transform(
        image, matrix[:3, :3], offset=matrix[:3, 3], order=1, mode="constant", cval=fill
    ).astype(image.dtype)
