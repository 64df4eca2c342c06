"""A lesion's extent at half its height over the brain: one rule for one or two visits.

The demo network finds FLAIR lesions but under-segments them (its probability falls below 0.5
well inside the lesion's edge), and not by the same amount on two visits. The extent is
therefore taken from the image itself: the FLAIR is scaled by its brain's median
(normal-appearing white matter dominates it, so 1.0 is normal brain whatever the scanner's
gain or bias), a lesion's peak is the 90th percentile of that scaled intensity inside it, and
the lesion is the voxels above half the peak's height over 1.0 (full width at half maximum)
connected to the network's lesion, within two voxels of it and inside the brain. Two voxels
bound the growth: a faint detection next to cortex cannot flood it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage

__all__ = ["GROWTH_VOXELS", "Visit", "extent", "half_max_level", "refine"]

GROWTH_VOXELS = 2


@dataclass(frozen=True)
class Visit:
    """One FLAIR and its brain, on the grid of its lesion labels.

    Attributes
    ----------
    image : numpy.ndarray
        The FLAIR, ``[slice, row, column]``.
    brain : numpy.ndarray
        Boolean skull-stripped brain, same grid.
    """

    image: np.ndarray
    brain: np.ndarray

    @cached_property
    def scaled(self) -> np.ndarray:
        """The image over its brain's median (1.0 is normal-appearing brain); computed once."""
        inside = self.image[self.brain]
        median = float(np.median(inside)) if inside.size else 0.0
        return np.asarray(self.image, np.float32) / (median if median > 0 else 1.0)


def half_max_level(scaled: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> float | None:
    """Half height over normal brain of the mean peak of the non-empty ``masks`` on their
    ``scaled`` images; None when every mask is empty."""
    peaks = [float(np.percentile(s[m], 90)) for s, m in zip(scaled, masks, strict=True) if m.any()]
    if not peaks:
        return None
    return 1.0 + 0.5 * (float(np.mean(peaks)) - 1.0)


def _box(seed: np.ndarray) -> tuple[slice, ...] | None:
    """The bounding box of ``seed`` with room to grow; None when it is empty."""
    (box,) = ndimage.find_objects(seed.astype(np.int8)) or (None,)
    return None if box is None else _padded(box)


def _padded(box: tuple[slice, ...]) -> tuple[slice, ...]:
    """``box`` widened by the growth and one voxel (clipped at 0; numpy clips the stop)."""
    pad = GROWTH_VOXELS + 1
    return tuple(slice(max(s.start - pad, 0), s.stop + pad) for s in box)


def _grow(scaled: np.ndarray, brain: np.ndarray, seed: np.ndarray, level: float) -> np.ndarray:
    region = ndimage.binary_dilation(seed, iterations=GROWTH_VOXELS) & brain
    above = region & (scaled > level)
    labels, _ = ndimage.label(above, structure=np.ones((3, 3, 3), bool))
    keep = np.unique(labels[seed & above])
    return np.isin(labels, keep[keep > 0])


def extent(scaled: np.ndarray, brain: np.ndarray, seed: np.ndarray, level: float) -> np.ndarray:
    """Voxels above ``level`` connected to ``seed`` within :data:`GROWTH_VOXELS` of it, inside
    the brain (worked out in the seed's box)."""
    out = np.zeros(seed.shape, bool)
    box = _box(seed)
    if box is not None:
        out[box] = _grow(scaled[box], brain[box], seed[box], level)
    return out


def refine(visit: Visit, mask: np.ndarray) -> np.ndarray:
    """Each connected lesion of ``mask`` at its half-maximum extent on ``visit`` (a lesion
    with no voxel above its level keeps its mask)."""
    scaled = visit.scaled
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    out = np.zeros(mask.shape, bool)
    for n, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        pad = _padded(box)
        lesion = labels[pad] == n
        level = half_max_level([scaled[pad]], [lesion])
        grown = _grow(scaled[pad], visit.brain[pad], lesion, level) if level else lesion
        out[pad] |= grown if grown.any() else lesion
    return out
