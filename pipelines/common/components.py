"""Connected components of a binary volume (26-connectivity), with scipy.ndimage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["Component", "connected_components"]


@dataclass(frozen=True)
class Component:
    """One connected component.

    Attributes
    ----------
    label : int
        Its value in the label volume (1 = largest).
    voxels : int
        Number of voxels.
    centroid : numpy.ndarray
        Mean voxel index, in the input's axis order.
    """

    label: int
    voxels: int
    centroid: np.ndarray


def connected_components(
    mask: np.ndarray, *, min_voxels: int = 1
) -> tuple[np.ndarray, list[Component]]:
    """Label the components of ``mask`` with at least ``min_voxels`` voxels, largest first.

    Returns
    -------
    labels : numpy.ndarray
        int32 array of ``mask``'s shape: 0 outside the kept components, ``n`` on the n-th.
    components : list of Component
        The kept components, ``components[n - 1].label == n``.
    """
    if mask.ndim != 3:
        raise ValueError(f"mask must be 3-D, got {mask.ndim} dimensions")
    raw, count = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if count == 0:
        return np.zeros(mask.shape, np.int32), []
    counts = np.bincount(raw.ravel(), minlength=count + 1)[1:]
    order = np.argsort(-counts, kind="stable")
    keep = order[counts[order] >= min_voxels]
    new_label = np.zeros(count + 1, np.int32)
    new_label[keep + 1] = np.arange(1, len(keep) + 1, dtype=np.int32)
    labels = new_label[raw]
    centroids = ndimage.center_of_mass(mask, raw, keep + 1) if len(keep) else []
    components = [
        Component(label=n, voxels=int(counts[i]), centroid=np.asarray(centroid, float))
        for n, (i, centroid) in enumerate(zip(keep, centroids, strict=True), start=1)
    ]
    return labels, components
