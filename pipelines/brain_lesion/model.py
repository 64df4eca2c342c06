"""The brain lesion segmenter: inputs, preprocessing and inferer as the bundle says.

Shared by the pipeline and ``models/train.py``. Works for the demo single-FLAIR bundle and for
the official ``brats_mri_segmentation`` bundle (4 channels: T1c, T1, T2, FLAIR).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.inferers import SlidingWindowInferer
from monai.transforms import NormalizeIntensity

from dicomnode.pipeline import InputRefused
from dicomnode.pipeline.bundle import Bundle
from pipelines.brain_lesion.channels import input_roles, lesion_channel
from pipelines.common.dicomio import Volume
from pipelines.common.grid import WorkingGrid, to_working_grid

__all__ = ["build_inferer", "input_roles", "lesion_channel", "prepare"]


def _same_grid(volumes: Sequence[Volume]) -> None:
    first = volumes[0]
    for other in volumes[1:]:
        if other.array.shape != first.array.shape or not np.allclose(
            other.affine(), first.affine(), atol=0.05
        ):
            raise InputRefused("the input series are not on one voxel grid (register them first)")


def prepare(
    volumes: Sequence[Volume], bundle: Bundle, device: str = "cpu"
) -> tuple[torch.Tensor, WorkingGrid]:
    """Orient, resample and normalise the channel volumes: ``[C, X, Y, Z]`` plus the grid."""
    _same_grid(volumes)
    orientation = (bundle.transform_args("Orientationd") or {}).get("axcodes", "RAS")
    spacing = (bundle.transform_args("Spacingd") or {}).get("pixdim")
    channels, grid = [], None
    for volume in volumes:
        tensor, grid = to_working_grid(
            volume, axcodes=str(orientation), pixdim=spacing, device=device
        )
        channels.append(tensor)
    assert grid is not None
    image = torch.stack(channels)
    args = bundle.transform_args("NormalizeIntensityd")
    if args is not None:
        normalise = NormalizeIntensity(
            nonzero=bool(args.get("nonzero", False)),
            channel_wise=bool(args.get("channel_wise", False)),
        )
        image = torch.as_tensor(normalise(image))
    return image.float(), grid


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
