"""The lung nodule detector: a MONAI RetinaNet built from a bundle, and its preprocessing.

Shared by the pipeline and by ``models/train.py`` so that training sees exactly what inference
sees. The official bundle's ``inferer`` item imports the bundle's own scripts, so the
detector is built here from ``network_def`` + ``anchor_generator`` with MONAI's
:class:`~monai.apps.detection.networks.retinanet_detector.RetinaNetDetector`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.apps.detection.networks.retinanet_detector import RetinaNetDetector
from monai.apps.detection.transforms.box_ops import flip_boxes

from dicomnode.pipeline.bundle import Bundle
from pipelines.common.dicomio import Volume
from pipelines.common.grid import WorkingGrid, to_working_grid

__all__ = [
    "DEFAULT_PIXDIM",
    "VIEWS",
    "build_detector",
    "fuse_views",
    "intensity_range",
    "mirrored_detections",
    "prepare",
]

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


#: The views a CT is detected in (test-time mirroring): as it is, then flipped along each
#: working axis in turn (axes of the ``[X, Y, Z]`` image).
VIEWS: tuple[tuple[int, ...], ...] = ((), (0,), (1,), (2,))

#: Smallest distance (mm) at which two views' boxes are taken for one finding; above it, half
#: the cluster's mean box extent (a 20 mm nodule's views may disagree by several mm).
_SAME_FINDING_MM = 2.5


def mirrored_detections(
    detector: RetinaNetDetector,
    image: torch.Tensor,
    spacing: Sequence[float],
    *,
    use_inferer: bool,
    mirror: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes ``(n, 6)`` (working voxels, xyzxyz) and raw scores of ``image`` ``[1, X, Y, Z]``,
    fused over the :data:`VIEWS` when ``mirror`` (:func:`fuse_views`), else of one pass.

    A nodule looks like a nodule from every side; many of the small detector's false positives
    (vessel crossings, airway walls) score high in one view and low in the others. The trainer
    mirrors its patches along each axis, so each view is one the network knows. Boxes are
    flipped back with MONAI's :func:`~monai.apps.detection.transforms.box_ops.flip_boxes` in
    voxel-centre coordinates (``x -> size - 1 - x``), as the trainer flips its patches' boxes.
    """
    views = VIEWS if mirror else VIEWS[:1]
    size = tuple(int(s) for s in image.shape[1:])
    runs = []
    for axes in views:
        view = torch.flip(image, [axis + 1 for axis in axes]) if axes else image
        output = detector([view], use_inferer=use_inferer)[0]
        boxes = output["box"].float().cpu().numpy().reshape(-1, 6)
        if axes:
            boxes = flip_boxes(boxes, [s - 1 for s in size], axes)  # voxel centres
        runs.append((boxes, output["label_scores"].float().cpu().numpy().reshape(-1)))
    if len(runs) == 1:
        return runs[0]
    return fuse_views(runs, spacing)


def fuse_views(
    runs: Sequence[tuple[np.ndarray, np.ndarray]], spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted box fusion of the detections of several views of one image.

    Detections, best first, join the first cluster whose fused centre lies within
    max(2.5 mm, half the cluster's mean box extent) of theirs, or start one. A cluster's box is
    the score-weighted mean of its boxes; its score the sum over views of each view's best
    score in it, divided by the number of views (a box seen in one view of four scores a
    quarter of its score).

    Parameters
    ----------
    runs : sequence of (boxes, scores)
        Per view: boxes ``(n, 6)`` xyzxyz in working voxels, already in the image's pose, and
        their scores ``(n,)``.
    spacing : sequence of 3 float
        Working voxel size (mm), for the distances.

    Returns
    -------
    tuple of numpy.ndarray
        Fused boxes ``(m, 6)`` and scores ``(m,)``.
    """
    scale = np.asarray(spacing, float)
    boxes = np.concatenate([b.reshape(-1, 6) for b, _ in runs]).astype(float)
    scores = np.concatenate([s.reshape(-1) for _, s in runs]).astype(float)
    views = np.concatenate([np.full(len(s.reshape(-1)), n) for n, (_, s) in enumerate(runs)])
    order = np.argsort(-scores, kind="stable")
    weighted = np.zeros((len(order), 6))  # per cluster: sum of score x box
    weights = np.zeros(len(order))
    best = np.zeros((len(order), len(runs)))  # per cluster and view: best score
    count = 0
    for i in order:
        box, score = boxes[i], max(float(scores[i]), 1e-6)
        if count:
            fused = weighted[:count] / weights[:count, None]
            centres = (fused[:, :3] + fused[:, 3:]) / 2 * scale
            reach = np.maximum(
                _SAME_FINDING_MM, 0.5 * (np.abs(fused[:, 3:] - fused[:, :3]) * scale).mean(axis=1)
            )
            distance = np.linalg.norm(centres - (box[:3] + box[3:]) / 2 * scale, axis=1)
            near = np.flatnonzero(distance <= reach)
        else:
            near = np.zeros(0, int)
        cluster = int(near[0]) if len(near) else count
        if not len(near):
            count += 1
        weighted[cluster] += score * box
        weights[cluster] += score
        best[cluster, views[i]] = max(best[cluster, views[i]], float(scores[i]))
    return weighted[:count] / weights[:count, None], best[:count].sum(axis=1) / len(runs)
