"""Multi-frame inputs made from the synthetic series: Legacy Converted Enhanced CT/MR images.

highdicom's ``legacy`` module converts a classic single-frame series into one instance whose
frames carry their planes, rescale and window in per-frame and shared functional groups, as an
Enhanced CT/MR from a scanner does. The damaged variants keep everything else valid, so that
the one fault under test is the only reason a pipeline can refuse them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from highdicom.legacy import LegacyConvertedEnhancedCTImage, LegacyConvertedEnhancedMRImage
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

__all__ = ["legacy_enhanced", "without_pixel_data", "without_plane_positions"]

_CONVERTERS = {"CT": LegacyConvertedEnhancedCTImage, "MR": LegacyConvertedEnhancedMRImage}


def legacy_enhanced(datasets: Sequence[Dataset], *, series_number: int = 900) -> Dataset:
    """One Legacy Converted Enhanced image (new series) of the classic CT or MR ``datasets``."""
    modality = str(datasets[0].Modality)
    if modality not in _CONVERTERS:
        raise ValueError(f"modality must be CT or MR, got {modality!r}")
    image = _CONVERTERS[modality](
        list(datasets),
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
    )
    return image


def without_plane_positions(image: Dataset) -> Dataset:
    """A copy of ``image`` whose frames have no Plane Position functional group."""
    damaged = copy.deepcopy(image)
    for group in damaged.PerFrameFunctionalGroupsSequence:
        if "PlanePositionSequence" in group:
            del group.PlanePositionSequence
    shared = damaged.SharedFunctionalGroupsSequence[0]
    if "PlanePositionSequence" in shared:
        del shared.PlanePositionSequence
    return damaged


def without_pixel_data(image: Dataset) -> Dataset:
    """A copy of ``image`` without its Pixel Data element (the header is unchanged)."""
    damaged = copy.deepcopy(image)
    del damaged.PixelData
    return damaged
