"""``lung_nodule``: chest CT -> nodule candidates (centre, diameter, volume, score) + masks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydicom.dataset import Dataset

from dicomnode.pipeline import (
    InputRefused,
    PipelineInputs,
    PipelineLevel,
    PipelineResult,
    RunContext,
)
from dicomnode.pipeline.bundle import Bundle
from dicomnode.results import FindingKind, Findings, Mask, RegionFinding, VolumeGeometry
from pipelines.common.base import BundlePipeline, inference_mode
from pipelines.common.dicomio import (
    check_decode_budget,
    check_geometry,
    read_datasets,
    read_headers,
    require_modality,
    volume_from_datasets,
)
from pipelines.lung_nodule.followup import MeasuredNodule
from pipelines.lung_nodule.scan import Scan

if TYPE_CHECKING:  # torch: imported by run(), never by check()
    from pipelines.common.grid import WorkingGrid
    from pipelines.lung_nodule.lungs import LungMask

__all__ = ["LUNG_MARGIN_MM", "LungNodulePipeline"]

LUNG_MARGIN_MM = 10.0
"""How far outside the lung mask a detection's centre may lie: the mask is made on ~2.5 mm
voxels, and the centres of juxtapleural nodules at an oblique pleura (apex, diaphragm) were
found up to 4.7 mm outside it in the domain-randomised CTs; chest-wall distractors of the
second phantom family lie 13.6 mm and more outside."""


class LungNodulePipeline(BundlePipeline):
    """Detect lung nodules in a chest CT series with a MONAI RetinaNet bundle.

    Anatomy first: the lungs are found in the CT (:func:`~pipelines.lung_nodule.lungs.lung_mask`,
    juxtapleural nodules kept by a border repair) and a detection whose centre lies more than
    ``LUNG_MARGIN_MM`` outside them is dropped; a CT without lungs is refused.

    Options read
    ------------
    bundle, decode_budget_bytes, amp
        See :class:`~pipelines.common.base.BundlePipeline`.
    threshold : float
        The operating point: smallest calibrated detection probability reported (default: the
        bundle's calibrated operating point, else 0.5; see ``pipelines.common.calibration``).
    min_diameter_mm : float
        Smallest nodule reported (default 4 mm: the size floor of the Fleischner guidelines and
        of Lung-RADS, below which no follow-up is recommended).
    max_findings : int
        Most nodules reported, best scores first (default 20).
    min_slices : int
        Fewest slices accepted (default 16).
    patch_size : list of 3 int
        Sliding-window patch (working voxels); default the bundle's ``infer_patch_size``.
    mirror : bool
        Detect in the CT and in its three single-axis mirror images and fuse the four views'
        boxes (default true: :func:`~pipelines.lung_nodule.model.mirrored_detections`); false:
        one pass, about 4x faster. The bundle's calibration is fitted with the default.
    """

    name: ClassVar[str] = "lung_nodule"
    version: ClassVar[str] = "0.2.1"
    level: ClassVar[PipelineLevel] = PipelineLevel.SERIES
    bundle_name: ClassVar[str] = "lung_nodule_ct_detection"
    uses_priors: ClassVar[bool] = True

    @staticmethod
    def _files(inputs: PipelineInputs) -> tuple[Path, ...]:
        if len(inputs.series) != 1:
            raise InputRefused(f"expects 1 CT series, got {len(inputs.series)}")
        return inputs.series[0].files

    def _check_headers(self, headers: Sequence[Dataset]) -> None:
        require_modality(headers, "CT")
        slices = sum(int(ds.get("NumberOfFrames", 1) or 1) for ds in headers)
        minimum = int(self.options.get("min_slices", 16))
        if slices < minimum:
            raise InputRefused(f"too few slices: {slices} (at least {minimum} needed)")
        check_decode_budget(headers, self.decode_budget, max_ratio=self.max_compression_ratio)
        check_geometry(headers)

    def check(self, inputs: PipelineInputs) -> None:
        """Refuse non-CT input, too few slices, several series, an oversized series or one
        without usable geometry (classic single-frame or one enhanced multi-frame image)."""
        self._check_headers(read_headers(self._files(inputs)))

    def build_model(self, bundle: Bundle, device: str) -> Any:
        """The RetinaNetDetector (network with weights, anchors, box selector, inferer)."""
        from pipelines.lung_nodule.model import build_detector

        return build_detector(bundle, device, patch_size=self.options.get("patch_size"))

    def run(self, inputs: PipelineInputs, ctx: RunContext) -> PipelineResult:
        """Detect nodules; findings are spheres in patient coordinates plus one mask, with the
        segmented volume of each; with a prior (``inputs.priors``), the change since it."""
        options: Mapping[str, Any] = ctx.options or {}
        scan = self.read_scan(self._files(inputs), ctx)
        nodules = self.detect_nodules(scan, ctx, options)
        regions, mask = _findings(nodules, scan.volume.geometry, scan.volume.affine())
        comparison = None
        if inputs.priors or inputs.priors_note:
            from pipelines.lung_nodule.prior import follow_up

            comparison = follow_up(self, inputs, scan, nodules, ctx)
        findings = Findings(
            kinds=(FindingKind.LUNG_NODULE,),
            regions=tuple(regions),
            masks=(mask,) if mask is not None else (),
            comparison=comparison,
        )
        return self.result(findings)

    def read_scan(self, files: Sequence[Path], ctx: RunContext) -> Scan:
        """Read, check and decode one CT series; find its lungs."""
        from pipelines.lung_nodule.lungs import lung_mask

        datasets = read_datasets(files)
        self._check_headers(datasets)  # before decoding; the runner's check() read only headers
        volume = volume_from_datasets(datasets)
        first = datasets[0]
        series = (
            str(first.StudyInstanceUID),
            str(first.SeriesInstanceUID),
            str(first.SOPClassUID),
            str(first.get("StudyDate", "")) or None,
        )
        del datasets
        return Scan(volume, lung_mask(volume.array, volume.affine()), *series)

    def detect_nodules(
        self, scan: Scan, ctx: RunContext, options: Mapping[str, Any]
    ) -> list[MeasuredNodule]:
        """The nodules of one scan, best first, each with its segmented volume."""
        from pipelines.lung_nodule.model import mirrored_detections, prepare
        from pipelines.lung_nodule.volumetry import nodule_volume_mm3

        detector = self.model(ctx.device)
        bundle = self.bundle(ctx.device)
        image, grid = prepare(scan.volume, bundle, ctx.device)
        patch = detector.inferer.roi_size if detector.inferer is not None else image.shape[1:]
        use_inferer = any(s > p for s, p in zip(image.shape[1:], patch, strict=True))
        ctx.log.info(
            "lung_nodule: working grid %s, sliding window %s, lungs %.0f mL",
            grid.shape,
            use_inferer,
            scan.lungs.volume_ml,
        )
        with inference_mode(ctx.device, self.amp):
            boxes, raw = mirrored_detections(
                detector,
                image,
                grid.spacing,
                use_inferer=use_inferer,
                mirror=bool(self.option("mirror", True, options)),
            )
        scores = self.calibrated(raw)
        keep = _kept(
            boxes,
            scores,
            grid,
            scan.lungs,
            threshold=self.operating_point(options, 0.5),
            min_diameter_mm=float(self.option("min_diameter_mm", 4.0, options)),
            limit=int(self.option("max_findings", 20, options)),
        )
        affine = scan.volume.affine()
        nodules = []
        for n, (box, score) in enumerate(zip(boxes[keep], scores[keep], strict=True), start=1):
            diameter = float(_diameters(box[None], grid)[0])
            centre = grid.to_patient(((box[:3] + box[3:]) / 2)[None])[0]
            volume = nodule_volume_mm3(scan.volume.array, affine, centre, diameter)
            nodules.append(
                MeasuredNodule(
                    (float(centre[0]), float(centre[1]), float(centre[2])),
                    volume,
                    diameter,
                    f"nodule {n}",
                    scan.instance_at(centre),
                    score=float(np.clip(score, 0.0, 1.0)),
                )
            )
        return nodules


def _kept(
    boxes: np.ndarray,
    scores: np.ndarray,
    grid: WorkingGrid,
    lungs: LungMask,
    *,
    threshold: float,
    min_diameter_mm: float,
    limit: int,
) -> np.ndarray:
    """Indices of the detections reported: score, size and centre in the lungs, best first."""
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] >= threshold]
    if len(order) == 0:
        return order
    diameters = _diameters(boxes[order], grid)
    centres = grid.to_patient((boxes[order, :3] + boxes[order, 3:]) / 2)
    inside = lungs.contains(centres, LUNG_MARGIN_MM)
    return order[(diameters >= min_diameter_mm) & inside][:limit]


def _diameters(boxes: np.ndarray, grid: WorkingGrid) -> np.ndarray:
    """Mean box extent in mm: the nodule diameter reported."""
    extent_mm = np.abs(boxes[:, 3:] - boxes[:, :3]) * np.asarray(grid.spacing)
    return np.maximum(extent_mm.mean(axis=1), 1e-3)


def _findings(
    nodules: Sequence[MeasuredNodule], geometry: VolumeGeometry, affine: np.ndarray
) -> tuple[list[RegionFinding], Mask | None]:
    regions = []
    mask = np.zeros(geometry.shape, bool)
    for nodule in nodules:
        regions.append(
            RegionFinding.sphere(
                FindingKind.LUNG_NODULE,
                nodule.center,
                round(nodule.diameter_mm, 2),
                score=nodule.score,
                volume_ml=round(nodule.volume_mm3 / 1000.0, 5) if nodule.volume_mm3 > 0 else None,
                tracking_id=nodule.tracking_id,
            )
        )
        _paint_sphere(mask, affine, np.asarray(nodule.center), nodule.diameter_mm / 2)
    if not regions:
        return regions, None
    return regions, Mask(FindingKind.LUNG_NODULE, mask, geometry, label="lung nodule")


def _paint_sphere(
    mask: np.ndarray, affine: np.ndarray, centre_mm: np.ndarray, radius: float
) -> None:
    """Set the source voxels (``[slice, row, column]``) within ``radius`` mm of the centre."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)  # column, row, slice
    inverse = np.linalg.inv(affine)
    centre = (inverse @ np.append(centre_mm, 1.0))[:3]
    reach = np.ceil(radius / spacing).astype(int) + 1
    low = np.maximum(np.floor(centre).astype(int) - reach, 0)
    high = np.minimum(np.ceil(centre).astype(int) + reach + 1, mask.shape[::-1])
    if np.any(high <= low):
        return
    axes = [np.arange(lo, hi) for lo, hi in zip(low, high, strict=True)]
    ii, jj, kk = np.meshgrid(*axes, indexing="ij")
    points = np.stack([ii, jj, kk, np.ones_like(ii)], axis=-1) @ affine.T
    inside = np.linalg.norm(points[..., :3] - centre_mm, axis=-1) <= radius
    mask[low[2] : high[2], low[1] : high[1], low[0] : high[0]] |= np.transpose(inside, (2, 1, 0))
