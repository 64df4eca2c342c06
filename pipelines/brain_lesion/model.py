"""The brain lesion segmenter: inputs, preprocessing and inferer as the bundle says.

Shared by the pipeline and ``models/train.py``. Works for the demo single-FLAIR bundle and for
the official ``brats_mri_segmentation`` bundle (4 channels: T1c, T1, T2, FLAIR).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.inferers import SlidingWindowInferer
from monai.transforms import NormalizeIntensity

from dicomnode.pipeline import InputRefused
from dicomnode.pipeline.bundle import Bundle
from pipelines.brain_lesion.channels import input_roles, lesion_channel
from pipelines.brain_lesion.skullstrip import (
    brain_mask,
    correct_bias,
    drop_extracerebral_fat,
    scale_percentiles,
)
from pipelines.common.dicomio import Volume
from pipelines.common.grid import WorkingGrid, to_working_grid

__all__ = [
    "Prepared",
    "build_inferer",
    "input_roles",
    "lesion_channel",
    "mirrored_probability",
    "prepare",
    "prepare_masked",
]


def _same_grid(volumes: Sequence[Volume]) -> None:
    first = volumes[0]
    for other in volumes[1:]:
        if other.array.shape != first.array.shape or not np.allclose(
            other.affine(), first.affine(), atol=0.05
        ):
            raise InputRefused("the input series are not on one voxel grid (register them first)")


@dataclass(frozen=True)
class Prepared:
    """The network input and what the pipeline needs besides.

    Attributes
    ----------
    image : torch.Tensor
        ``[C, X, Y, Z]`` float32: skull-stripped (0 outside the brain), bias-corrected and
        normalised inside the brain as the bundle declares.
    grid : WorkingGrid
        The mapping back to the source volume.
    brain : numpy.ndarray
        Boolean ``[X, Y, Z]`` brain mask on the working grid.
    """

    image: torch.Tensor
    grid: WorkingGrid
    brain: np.ndarray


def _mask_channel(roles: Sequence[str]) -> int:
    """The channel skull stripping looks at: FLAIR when present, else the first."""
    return roles.index("flair") if "flair" in roles else 0


def _normalise(image: np.ndarray, brain: np.ndarray, bundle: Bundle) -> np.ndarray:
    """The bundle's intensity normalisation of one channel, computed inside the brain."""
    args = bundle.transform_args("ScaleIntensityRangePercentilesd")
    if args is not None:
        return scale_percentiles(
            image,
            brain,
            lower=float(args.get("lower", 1.0)),
            upper=float(args.get("upper", 99.0)),
            b_min=float(args.get("b_min", 0.0)),
            b_max=float(args.get("b_max", 1.0)),
            clip=bool(args.get("clip", False)),
        )
    stripped = np.where(brain, image, 0.0).astype(np.float32)
    args = bundle.transform_args("NormalizeIntensityd")
    if args is None:
        return stripped
    # Brain-only statistics: BraTS bundles normalise the non-zero (skull-stripped) voxels.
    normalise = NormalizeIntensity(nonzero=True)
    return np.where(brain, np.asarray(normalise(stripped[None]))[0], 0.0).astype(np.float32)


def prepare_masked(volumes: Sequence[Volume], bundle: Bundle, device: str = "cpu") -> Prepared:
    """Orient and resample the channel volumes, strip the skull, correct the bias field, drop
    the extracerebral fat and normalise inside the brain (see
    :mod:`pipelines.brain_lesion.skullstrip`)."""
    _same_grid(volumes)
    orientation = (bundle.transform_args("Orientationd") or {}).get("axcodes", "RAS")
    spacing = (bundle.transform_args("Spacingd") or {}).get("pixdim")
    channels, grid = [], None
    for volume in volumes:
        tensor, grid = to_working_grid(
            volume, axcodes=str(orientation), pixdim=spacing, device="cpu"
        )
        channels.append(tensor.numpy())
    assert grid is not None
    roles = input_roles(bundle.metadata)
    mask = brain_mask(channels[_mask_channel(roles)], grid.spacing).brain
    corrected = [correct_bias(channel, mask, grid.spacing) for channel in channels]
    mask = drop_extracerebral_fat(corrected[_mask_channel(roles)], mask, grid.spacing)
    image = np.stack([_normalise(channel, mask, bundle) for channel in corrected])
    return Prepared(torch.from_numpy(image).float().to(device), grid, mask)


def prepare(
    volumes: Sequence[Volume], bundle: Bundle, device: str = "cpu"
) -> tuple[torch.Tensor, WorkingGrid]:
    """The network input ``[C, X, Y, Z]`` and the grid (see :func:`prepare_masked`)."""
    prepared = prepare_masked(volumes, bundle, device)
    return prepared.image, prepared.grid


def build_inferer(bundle: Bundle, patch_size: Sequence[int] | None = None) -> Any:
    """The bundle's sliding-window inferer, with ``patch_size`` overriding its roi."""
    args = bundle.get("inferer", {}) or {}
    roi = list(patch_size or args.get("roi_size", [96, 96, 96]))
    return SlidingWindowInferer(
        roi_size=roi,
        sw_batch_size=int(args.get("sw_batch_size", 1)),
        overlap=float(args.get("overlap", 0.25)),
        mode=str(args.get("mode", "constant")),
    )


#: The mirror images a prediction is averaged over: each subset of the three spatial axes of an
#: ``[N, C, X, Y, Z]`` batch (the identity first), 8 in all.
MIRRORS: tuple[tuple[int, ...], ...] = tuple(
    dims for n in range(4) for dims in itertools.combinations((2, 3, 4), n)
)


def mirrored_probability(
    inferer: Callable[[torch.Tensor, torch.nn.Module], torch.Tensor],
    image: torch.Tensor,
    network: torch.nn.Module,
    channel: int,
    mirror: bool = True,
) -> torch.Tensor:
    """The probability (sigmoid) of output ``channel`` for ``image`` ``[C, X, Y, Z]``, averaged
    over the image's 8 mirror images when ``mirror`` (test-time mirroring, as nnU-Net does).

    A small network's mistakes depend on the side it looks from; a finding in the brain does
    not. On the independent phantom family the average dropped nearly all the demo network's
    false lesions (``models/FIGURES.md``). It costs 8 network passes: the demo pipeline on a
    240x240x155 FLAIR takes 8.7 s instead of 4.7 s (13.0 instead of 5.5 s of CPU).
    """
    mirrors = MIRRORS if mirror else MIRRORS[:1]
    total = torch.zeros(image.shape[1:], dtype=torch.float32, device=image.device)
    for dims in mirrors:
        batch = torch.flip(image[None], dims) if dims else image[None]
        logits = inferer(batch, network)
        if dims:
            logits = torch.flip(logits, dims)
        total += torch.sigmoid(logits[0, channel].float())
    return total / len(mirrors)
