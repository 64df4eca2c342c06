"""The lung nodule detector: a MONAI RetinaNet built from a bundle, and its preprocessing.

Shared by the pipeline and by ``models/train.py`` so that training sees exactly what inference
sees. The official bundle's ``inferer`` item imports the bundle's own scripts, so the
detector is built here from ``network_def`` + ``anchor_generator`` with MONAI's
:class:`~monai.apps.detection.networks.retinanet_detector.RetinaNetDetector`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.apps.detection.networks.retinanet_detector import RetinaNetDetector

from dicomnode.pipeline.bundle import Bundle
from pipelines.common.dicomio import Volume
from pipelines.common.grid import WorkingGrid, to_working_grid

__all__ = ["DEFAULT_PIXDIM", "build_detector", "intensity_range", "prepare"]

DEFAULT_PIXDIM = (0.703125, 0.703125, 1.25)
"""The official bundle's voxel size (its Spacingd is disabled: LUNA16 comes resampled)."""

_BOX_SELECTOR = {
    "score_thresh": 0.02,
    "topk_candidates_per_level": 1000,
    "nms_thresh": 0.22,
    "detections_per_img": 300,
}


def intensity_range(bundle: Bundle) -> tuple[float, float, float, float, bool]:
    """(a_min, a_max, b_min, b_max, clip) of the bundle's ScaleIntensityRanged."""
    args = bundle.transform_args("ScaleIntensityRanged") or {}
    return (
        float(args.get("a_min", -1024.0)),
        float(args.get("a_max", 300.0)),
        float(args.get("b_min", 0.0)),
        float(args.get("b_max", 1.0)),
        bool(args.get("clip", True)),
    )


def pixdim(bundle: Bundle) -> tuple[float, float, float]:
    """The working voxel size: the bundle's Spacingd pixdim (even a disabled one)."""
    args = bundle.transform_args("Spacingd", include_disabled=True)
    if args and args.get("pixdim") is not None:
        values = [float(v) for v in args["pixdim"]]
        return (values[0], values[1], values[2])
    return DEFAULT_PIXDIM


def axcodes(bundle: Bundle) -> str:
    """The bundle's Orientationd axcodes (default RAS)."""
    args = bundle.transform_args("Orientationd") or {}
    return str(args.get("axcodes", "RAS"))


def prepare(
    volume: Volume, bundle: Bundle, device: str = "cpu"
) -> tuple[torch.Tensor, WorkingGrid]:
    """Orient, resample and scale a CT volume (HU) as the bundle says: ``[1, X, Y, Z]``."""
    tensor, grid = to_working_grid(
        volume, axcodes=axcodes(bundle), pixdim=pixdim(bundle), device=device
    )
    a_min, a_max, b_min, b_max, clip = intensity_range(bundle)
    tensor = (tensor - a_min) / (a_max - a_min) * (b_max - b_min) + b_min
    if clip:
        tensor = tensor.clamp(min(b_min, b_max), max(b_min, b_max))
    return tensor[None], grid


def box_selector(bundle: Bundle) -> dict[str, Any]:
    """Box selector parameters: the bundle's ``box_selector`` item over the official ones."""
    params = dict(_BOX_SELECTOR)
    params.update(bundle.get("box_selector", {}) or {})
    return params


def build_detector(
    bundle: Bundle,
    device: str,
    *,
    patch_size: Sequence[int] | None = None,
    network: torch.nn.Module | None = None,
) -> RetinaNetDetector:
    """A RetinaNetDetector around the bundle's network (weights loaded unless given)."""
    net = network if network is not None else bundle.load_network(device)
    _honour_no_max_pool(net, bundle)
    detector = RetinaNetDetector(
        network=net,
        anchor_generator=bundle.build("anchor_generator"),
        spatial_dims=int(bundle.get("spatial_dims", 3)),
        num_classes=int(bundle.get("num_classes", 1)),
        size_divisible=bundle.get("size_divisible", [16, 16, 8]),
    )
    detector.set_target_keys(box_key="box", label_key="label")
    detector.set_box_selector_parameters(**box_selector(bundle))
    roi = list(patch_size or bundle.get("infer_patch_size", [512, 512, 192]))
    detector.set_sliding_window_inferer(
        roi_size=roi, overlap=0.25, sw_batch_size=1, mode="constant", device=device
    )
    return detector.to(device).eval()


def _honour_no_max_pool(network: torch.nn.Module, bundle: Bundle) -> None:
    """Skip the backbone's max-pool when the bundle's ResNet says ``no_max_pool``.

    MONAI's ResNet skips it in its own ``forward`` only; ``BackboneWithFPN`` calls the
    backbone's children in turn, max-pool included, so the option is lost there.
    """
    backbone = bundle.get("backbone", {}) or {}
    body = getattr(getattr(network, "feature_extractor", None), "body", None)
    if isinstance(backbone, dict) and backbone.get("no_max_pool") and hasattr(body, "maxpool"):
        body.maxpool = torch.nn.Identity()  # type: ignore[union-attr]
