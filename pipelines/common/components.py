"""Connected components of a binary volume (26-connectivity), in torch (no scipy here)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

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


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    index = np.nonzero(mask)
    return tuple(slice(int(i.min()), int(i.max()) + 1) for i in index)


def _propagate(sub: torch.Tensor) -> torch.Tensor:
    """Each foreground voxel gets the largest index of its component (iterated max-pooling)."""
    dtype = torch.float32 if sub.numel() < 2**24 else torch.float64
    labels = torch.where(
        sub, torch.arange(1, sub.numel() + 1, dtype=dtype).reshape(sub.shape), 0.0
    ).to(dtype)
    while True:
        spread = F.max_pool3d(labels[None, None], 3, stride=1, padding=1)[0, 0]
        spread = torch.where(sub, spread, torch.zeros_like(spread))
        if torch.equal(spread, labels):
            return labels
        labels = spread


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
    out = np.zeros(mask.shape, np.int32)
    if not mask.any():
        return out, []
    box = _bounding_box(mask)
    sub = torch.from_numpy(np.ascontiguousarray(mask[box]))
    raw = _propagate(sub).numpy()
    foreground = raw > 0
    values, inverse, counts = np.unique(raw[foreground], return_inverse=True, return_counts=True)
    coords = np.nonzero(foreground)
    order = np.argsort(-counts, kind="stable")
    keep = order[counts[order] >= min_voxels]
    new_label = np.zeros(len(values), np.int32)
    new_label[keep] = np.arange(1, len(keep) + 1, dtype=np.int32)
    local = np.zeros(raw.shape, np.int32)
    local[coords] = new_label[inverse]
    out[box] = local
    offset = np.asarray([s.start for s in box], float)
    sums = np.stack([np.bincount(inverse, weights=c, minlength=len(values)) for c in coords], 1)
    components = [
        Component(label=n, voxels=int(counts[i]), centroid=sums[i] / counts[i] + offset)
        for n, i in enumerate(keep, start=1)
    ]
    return out, components
