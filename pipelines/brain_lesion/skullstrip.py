"""Skull stripping and intensity normalisation of a FLAIR (or any brain MR) in the working grid.

Works on the working grid (oriented to the bundle's axcodes, e.g. RAS, and resampled), so that a
sagittal, coronal or oblique-ish acquisition is stripped like an axial one; every size is in mm.

1. *Head*: tissue above a noise floor, its largest component, holes filled in 3-D and in every
   axial plane (the skull is dark on FLAIR: it is a hole inside the scalp).
2. *Brain*: bright tissue (Otsu's threshold on the log intensities inside the head, which a
   smooth multiplicative bias field only shifts), eroded by ``erode_mm`` to cut the thin
   bridges to scalp, orbit and skull-base fat, the largest component, dilated back, holes
   (ventricles, dark lesions) filled, a ``rim_mm`` margin of CSF added, and kept ``scalp_mm``
   inside the head's outline.
3. *Bias field*: the brain's intensity smoothed with a Gaussian of ``bias_sigma_mm`` by
   normalised convolution (brain voxels only) is divided out.
4. *Extracerebral fat*: where the orbits, the skull base or the scalp lie against the brain
   with no dark bridge between them, step 2 keeps their fat. Fat is not nulled on FLAIR and is
   the brightest tissue of a head; the brain's surface is a dark CSF rim. Bright tissue that
   reaches the mask's outer rim is therefore fat (or scalp), not parenchyma: it is dropped
   (:func:`drop_extracerebral_fat`). A white-matter lesion, even a juxtacortical one, is
   separated from that rim by cortex and CSF, both darker than the fat threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from dicomnode.pipeline import InputRefused
from pipelines.common.masks import dilate, erode, fill_holes, largest_components, otsu

__all__ = [
    "BrainMask",
    "brain_mask",
    "correct_bias",
    "drop_extracerebral_fat",
    "scale_percentiles",
    "white_matter_level",
]

_AXIAL = 2
"""The working grid's head-feet axis (RAS / LPS: the third)."""


@dataclass(frozen=True)
class BrainMask:
    """The head and the brain on the working grid.

    Attributes
    ----------
    head : numpy.ndarray
        Boolean ``[X, Y, Z]``: the head with its interior.
    brain : numpy.ndarray
        Boolean ``[X, Y, Z]``: the brain (grey and white matter, ventricles, a thin CSF rim).
    """

    head: np.ndarray
    brain: np.ndarray


def _head(image: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Tissue above a noise floor, its largest component, filled."""
    positive = image[image > 0]
    if positive.size == 0:
        raise InputRefused("no head found in the MR image (it is empty)")
    # The noise floor: a tenth of a bright-tissue level (the 98th percentile), which a
    # background of Rician noise (a few % of tissue) stays below.
    floor = 0.1 * float(np.percentile(positive, 98))
    tissue = largest_components(image > floor, 1)
    if not tissue:
        raise InputRefused("no head found in the MR image (no tissue above the noise)")
    return fill_holes(dilate(tissue[0], 2.0, spacing), _AXIAL)


def brain_mask(
    image: np.ndarray,
    spacing: Sequence[float],
    *,
    erode_mm: float = 4.0,
    rim_mm: float = 2.0,
    scalp_mm: float = 3.0,
    min_brain_ml: float = 100.0,
) -> BrainMask:
    """Strip the skull of a brain MR in the working grid.

    Parameters
    ----------
    image : numpy.ndarray
        ``[X, Y, Z]`` magnitude image (FLAIR), working grid (head-feet along the third axis).
    spacing : sequence of float
        Voxel size in mm per axis.
    erode_mm : float
        Erosion that cuts the brain from the scalp, orbit and skull-base fat (their bridges are
        thinner than twice this).
    rim_mm : float
        Margin added around the brain (the CSF between brain and skull).
    scalp_mm : float
        The brain stays this far inside the head's outline.
    min_brain_ml : float
        Smallest brain accepted.

    Raises
    ------
    InputRefused
        When no head or no brain of ``min_brain_ml`` is found.
    """
    image = np.asarray(image, np.float32)
    head = _head(image, spacing)
    inside = image[head & (image > 0)]
    threshold = float(np.exp(otsu(np.log(inside[inside > 0]))))
    bright = head & (image > threshold)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    core = largest_components(
        erode(bright, erode_mm, spacing), 1, min_voxels=int(np.ceil(min_brain_ml / voxel_ml / 4))
    )
    if not core:
        raise InputRefused("no brain found in the MR image (skull stripping found no brain)")
    brain = dilate(core[0], erode_mm + float(min(spacing)) / 2, spacing) & bright
    brain = dilate(fill_holes(brain, _AXIAL), rim_mm, spacing)
    brain = fill_holes(brain, _AXIAL) & erode(head, scalp_mm, spacing)
    if brain.sum() * voxel_ml < min_brain_ml:
        raise InputRefused(
            f"no brain found in the MR image ({brain.sum() * voxel_ml:.0f} mL after skull "
            f"stripping, at least {min_brain_ml:g} mL expected)"
        )
    return BrainMask(head=head, brain=brain)


def correct_bias(
    image: np.ndarray,
    brain: np.ndarray,
    spacing: Sequence[float],
    *,
    sigma_mm: float = 25.0,
    step_mm: float = 6.0,
) -> np.ndarray:
    """Divide out a smooth multiplicative field estimated inside the brain.

    The field is the brain's intensity smoothed with a Gaussian of ``sigma_mm`` by normalised
    convolution (``G * (I m) / G * m``, ``m`` the brain mask), on a coarse grid of about
    ``step_mm`` (speed), normalised to a median of 1 inside the brain. Lesions, a few mm
    across, hardly move a field smoothed over tens of mm.

    Returns
    -------
    numpy.ndarray
        float32 image of ``image``'s shape, unchanged outside the brain's reach.
    """
    factors = [max(1, int(round(step_mm / float(s)))) for s in spacing]
    stack = torch.from_numpy(np.stack([image * brain, brain]).astype(np.float32))
    coarse = F.avg_pool3d(stack[None], factors, ceil_mode=True)[0].numpy()
    sigma = [sigma_mm / (float(s) * f) for s, f in zip(spacing, factors, strict=True)]
    smooth = [ndimage.gaussian_filter(c, sigma, mode="constant") for c in coarse]
    field = np.where(smooth[1] > 1e-3, smooth[0] / np.maximum(smooth[1], 1e-3), 0.0)
    full = F.interpolate(
        torch.from_numpy(field.astype(np.float32))[None, None],
        size=image.shape,
        mode="trilinear",
        align_corners=False,
    )[0, 0].numpy()
    reference = float(np.median(full[brain])) if brain.any() else 1.0
    full = np.where(full > 1e-3 * reference, full / reference, 1.0)
    return np.asarray(image / full, np.float32)


def scale_percentiles(
    image: np.ndarray,
    brain: np.ndarray,
    *,
    lower: float,
    upper: float,
    b_min: float,
    b_max: float,
    clip: bool,
) -> np.ndarray:
    """MONAI's ``ScaleIntensityRangePercentiles`` with the percentiles taken inside ``brain``;
    0 outside it."""
    low, high = np.percentile(image[brain], [lower, upper]) if brain.any() else (0.0, 1.0)
    scaled = (image - low) / max(float(high - low), 1e-6) * (b_max - b_min) + b_min
    if clip:
        scaled = np.clip(scaled, min(b_min, b_max), max(b_min, b_max))
    return np.where(brain, scaled, 0.0).astype(np.float32)


def white_matter_level(image: np.ndarray, brain: np.ndarray, bins: int = 200) -> float:
    """The main mode of the brain's histogram: white matter, the largest tissue of a FLAIR
    brain (robust to lesions, cortex, CSF and fat, which shift a percentile)."""
    values = image[brain]
    low, high = np.percentile(values, [1.0, 99.5])
    counts, edges = np.histogram(values, bins=bins, range=(float(low), float(high)))
    peak = int(np.argmax(ndimage.gaussian_filter1d(counts.astype(np.float64), 2.0)))
    return float(0.5 * (edges[peak] + edges[peak + 1]))


def drop_extracerebral_fat(
    image: np.ndarray,
    brain: np.ndarray,
    spacing: Sequence[float],
    *,
    fat_ratio: float = 1.5,
    rim_mm: float = 2.0,
    margin_mm: float = 1.5,
) -> np.ndarray:
    """The brain mask without the fat that skull stripping kept at its edge.

    Parameters
    ----------
    image : numpy.ndarray
        ``[X, Y, Z]`` bias-corrected FLAIR (working grid).
    brain : numpy.ndarray
        Boolean brain mask from :func:`brain_mask`.
    spacing : sequence of float
        Voxel size in mm per axis.
    fat_ratio : float
        Fat threshold over the white-matter level (:func:`white_matter_level`). On FLAIR grey
        matter is 1.1-1.3x white matter and orbital or subcutaneous fat 1.5-2.5x: 1.5 keeps
        every cortex. Lesions reach it as well; what tells fat apart is where it lies.
    rim_mm : float
        The mask's outer rim (the CSF margin :func:`brain_mask` adds, ``rim_mm`` there): a
        bright region (26-connected, lightly smoothed) reaching into it is extracerebral.
    margin_mm : float
        The removed fat grown by this much inside the mask (its partial-volume edge).

    Returns
    -------
    numpy.ndarray
        Boolean mask, ``brain`` less the extracerebral fat.
    """
    if not brain.any():
        return brain.copy()
    level = white_matter_level(image, brain)
    sigma = [0.75 / float(s) for s in spacing]  # about a voxel: noise, not anatomy
    bright = brain & (ndimage.gaussian_filter(image, sigma) > fat_ratio * level)
    rim = brain & ~erode(brain, rim_mm, spacing)
    labels, count = ndimage.label(bright, np.ones((3, 3, 3), bool))
    if count == 0:
        return brain.copy()
    touching = np.unique(labels[rim & bright])
    fat = np.isin(labels, touching[touching > 0])
    return brain & ~dilate(fat, margin_mm, spacing)
