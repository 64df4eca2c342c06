"""Connected components of a binary volume (26-connectivity), in torch (no scipy here)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["Component", "connected_components"]


@dataclass(frozen=True)
class Component:
    """One connected component: its voxel mask and size.

    Attributes
    ----------
    mask : numpy.ndarray
        Boolean array of the input's shape.
    voxels : int
        Number of voxels.
    centroid : numpy.ndarray
        Mean voxel index, in the input's axis order.
    """

    mask: np.ndarray
    voxels: int
    centroid: np.ndarray


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    index = np.nonzero(mask)
    return tuple(slice(int(i.min()), int(i.max()) + 1) for i in index)


def connected_components(mask: np.ndarray, *, min_voxels: int = 1) -> list[Component]:
    """Components of ``mask`` with at least ``min_voxels`` voxels, largest first.

    Labels spread by 3x3x3 max-pooling inside the foreground until they stop changing, on the
    bounding box of the foreground only.
    """
    if mask.ndim != 3:
        raise ValueError(f"mask must be 3-D, got {mask.ndim} dimensions")
    if not mask.any():
        return []
    box = _bounding_box(mask)
    sub = torch.from_numpy(np.ascontiguousarray(mask[box]))
    labels = torch.where(
        sub, torch.arange(1, sub.numel() + 1, dtype=torch.float64).reshape(sub.shape), 0.0
    )
    labels = labels.float() if sub.numel() < 2**24 else labels
    while True:
        spread = F.max_pool3d(labels[None, None], 3, stride=1, padding=1)[0, 0]
        spread = torch.where(sub, spread, torch.zeros_like(spread))
        if torch.equal(spread, labels):
            break
        labels = spread
    values, counts = torch.unique(labels[sub], return_counts=True)
    found = []
    offset = np.asarray([s.start for s in box], float)
    for value, count in zip(values.tolist(), counts.tolist(), strict=True):
        if count < min_voxels:
            continue
        component = np.zeros(mask.shape, bool)
        local = (labels == value).numpy()
        component[box] = local
        centroid = np.mean(np.nonzero(local), axis=1) + offset
        found.append(Component(mask=component, voxels=int(count), centroid=centroid))
    return sorted(found, key=lambda c: -c.voxels)
