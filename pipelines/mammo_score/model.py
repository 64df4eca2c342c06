"""Mammography views -> network input, and network output -> density and mass scores.

Shared by the pipeline and ``models/train.py``. Works for the demo bundle (1 channel, 5
sigmoid outputs: A-D and mass) and the official ``breast_density_classification`` bundle
(3 channels at 299 x 299, 4 sigmoid outputs A-D).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydicom.dataset import Dataset

from dicomnode.pipeline import InputRefused
from dicomnode.pipeline.bundle import Bundle
from pipelines.mammo_score.breast import breast_regions, normalise_breast
from pipelines.mammo_score.views import ViewKey, view_key

__all__ = [
    "DENSITY_LABELS",
    "OutputChannels",
    "ViewKey",
    "output_channels",
    "view_key",
    "view_tensor",
]

DENSITY_LABELS = ("A", "B", "C", "D")


def _chest_wall_right(ds: Dataset, key: ViewKey) -> bool:
    orientation = ds.get("PatientOrientation")
    if orientation and len(orientation) >= 1 and str(orientation[0]):
        return str(orientation[0]).upper().startswith("P")
    return key.laterality == "R"


def input_shape(bundle: Bundle) -> tuple[int, int, int]:
    """(channels, rows, columns) the network takes."""
    size = (bundle.transform_args("Resized") or {}).get("spatial_size", [299, 299])
    fmt = bundle.metadata.get("network_data_format", {}).get("inputs", {}).get("image", {})
    return int(fmt.get("num_channels", 1)), int(size[0]), int(size[1])


def view_tensor(ds: Dataset, pixels: np.ndarray, bundle: Bundle) -> torch.Tensor:
    """One view as ``[C, H, W]``: MONOCHROME2 sense, chest wall left, resized, the breast only.

    After the resize (area) to the network's size, the breast and on MLO the pectoral muscle
    are found (:mod:`pipelines.mammo_score.breast`) and the image is normalised by percentiles
    of the breast without the muscle (the breast in [0.1, 1.5], its 99th percentile at 1), the
    background set to 0: a marker, a skin fold or any other blob outside the breast does not
    reach the network. The view is not cropped to the
    breast: the network sees the breast at the scale of the detector (its size is part of the
    picture), and a crop would change the aspect ratio per view.
    """
    if pixels.ndim != 2:
        raise InputRefused(f"expects single-frame grey-scale mammograms, got shape {pixels.shape}")
    key = view_key(ds)
    image = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")) == "MONOCHROME1":
        image = image.max() - image
    if _chest_wall_right(ds, key):
        image = torch.flip(image, (1,))
    channels, rows, columns = input_shape(bundle)
    small = F.interpolate(image[None, None], size=(rows, columns), mode="area")[0, 0].numpy()
    regions = breast_regions(small, mlo=key.projection == "MLO")
    normalised = torch.from_numpy(normalise_breast(small, regions))
    return normalised[None].expand(channels, rows, columns).contiguous()


@dataclass(frozen=True)
class OutputChannels:
    """Where density A-D and the mass score sit in the network output."""

    density: tuple[int, ...]
    mass: int | None
    sigmoid: bool


def output_channels(bundle: Bundle) -> OutputChannels:
    """From metadata ``channel_def`` (A, B, C, D, mass) and the postprocessing activation."""
    fmt = bundle.metadata.get("network_data_format", {}).get("outputs", {}).get("pred", {})
    names: Mapping[str, Any] = fmt.get("channel_def") or {str(i): c for i, c in enumerate("ABCD")}
    by_name = {str(v).strip().upper(): int(k) for k, v in names.items()}
    density = tuple(by_name[c] for c in DENSITY_LABELS if c in by_name)
    activation = bundle.transform_args("Activationsd", key="postprocessing") or {}
    return OutputChannels(density, by_name.get("MASS"), bool(activation.get("sigmoid", True)))
