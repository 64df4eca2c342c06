"""``brain_lesion``: MR FLAIR (or BraTS T1c/T1/T2/FLAIR) -> lesion mask, count and volumes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydicom.dataset import Dataset

from dicomnode.pipeline import (
    InputRefused,
    PipelineInputs,
    PipelineLevel,
    PipelineResult,
    RunContext,
    SeriesInput,
)
from dicomnode.results import FindingKind, Findings, Mask, RegionFinding
from pipelines.brain_lesion.channels import input_roles, lesion_channel
from pipelines.brain_lesion.segmentation import Segmentation
from pipelines.common.base import BundlePipeline, inference_mode
from pipelines.common.dicomio import (
    check_decode_budget,
    check_geometry,
    read_datasets,
    read_headers,
    require_modality,
    volume_from_datasets,
)

if TYPE_CHECKING:  # torch: imported by run(), never by check()
    from pipelines.common.grid import WorkingGrid

__all__ = ["MIN_LESION_VOXELS", "VOXEL_THRESHOLD", "BrainLesionPipeline"]

VOXEL_THRESHOLD = 0.5
"""Probability above which a voxel is lesion (the segmentation's own decision boundary); which
lesions are reported is the ``threshold`` option, on each lesion's calibrated score."""

MIN_LESION_VOXELS = 3
"""Fewest voxels of a lesion whatever ``min_lesion_mm``: one or two voxels are noise or partial
volume, not a shape (with thick slices 14.1 mm3 can be 2 voxels); 3 is also the generator's own
floor for a lesion (``dicomnode.synthetic``)."""


class BrainLesionPipeline(BundlePipeline):
    """Segment brain lesions with a MONAI segmentation bundle.

    Anatomy first: the skull is stripped in the working grid
    (:mod:`~pipelines.brain_lesion.skullstrip`), the network sees the brain only (bias-corrected,
    normalised inside the brain as the bundle declares) and lesion voxels outside the brain mask
    are dropped.

    The bundle's input channels (metadata ``channel_def``) name the series it needs: the demo
    bundle takes one FLAIR series (a series-level route, or a study-level route's ``flair``
    role); the official BraTS bundle takes roles ``t1c``, ``t1``, ``t2``, ``flair``.

    Options read
    ------------
    bundle, decode_budget_bytes, amp
        See :class:`~pipelines.common.base.BundlePipeline`.
    threshold : float
        The operating point: smallest calibrated lesion probability reported (default: the
        bundle's calibrated operating point, else 0.5). A lesion's raw score is the mean
        probability of its voxels (each above :data:`VOXEL_THRESHOLD`).
    min_lesion_mm : float
        Smallest lesion reported, as the diameter of a sphere of equal volume (default 3 mm:
        the MAGNIMS long-axis minimum for an MS lesion, 14.1 mm3), and never fewer than
        ``MIN_LESION_VOXELS`` voxels.
    min_slices : int
        Fewest slices accepted (default 8).
    patch_size : list of 3 int
        Sliding-window patch; default the bundle's inferer ``roi_size``.
    mirror : bool
        Average the network's probabilities over the volume's 8 mirror images (default true;
        false: one network pass instead of 8, the demo pipeline about 2x faster).
    """

    name: ClassVar[str] = "brain_lesion"
    version: ClassVar[str] = "0.3.0"
    level: ClassVar[PipelineLevel] = PipelineLevel.SERIES
    bundle_name: ClassVar[str] = "brain_flair_segmentation"
    uses_priors: ClassVar[bool] = True

    def roles(self) -> list[str]:
        """The input roles of the bundle (channel order)."""
        return input_roles(self.metadata())

    def select(self, inputs: PipelineInputs) -> list[SeriesInput]:
        """The series for each input channel, in the bundle's channel order."""
        roles = self.roles()
        chosen = [inputs.role(role) for role in roles]
        if all(s is not None for s in chosen):
            return [s for s in chosen if s is not None]
        if len(roles) == 1 and len(inputs.series) == 1:
            return [inputs.series[0]]
        missing = [r for r, s in zip(roles, chosen, strict=True) if s is None]
        if len(roles) == 1:
            raise InputRefused(
                f"expects 1 {roles[0].upper()} series or a study-level input with role "
                f"{roles[0]!r}, got {len(inputs.series)} series"
            )
        raise InputRefused(
            f"missing inputs: role(s) {', '.join(missing)} (the bundle needs {', '.join(roles)})"
        )

    def _check_headers(self, per_series: Sequence[Sequence[Dataset]]) -> None:
        minimum = int(self.options.get("min_slices", 8))
        total: list[Dataset] = []
        for headers in per_series:
            require_modality(headers, "MR")
            slices = sum(int(ds.get("NumberOfFrames", 1) or 1) for ds in headers)
            if slices < minimum:
                raise InputRefused(f"too few slices: {slices} (at least {minimum} needed)")
            total.extend(headers)
        check_decode_budget(total, self.decode_budget, max_ratio=self.max_compression_ratio)
        for headers in per_series:
            check_geometry(headers)

    def check(self, inputs: PipelineInputs) -> None:
        """Refuse non-MR input, missing sequences, too few slices, oversized series, or
        series without usable geometry (classic single-frame or one enhanced multi-frame image)."""
        self._check_headers([read_headers(series.files) for series in self.select(inputs)])

    def run(self, inputs: PipelineInputs, ctx: RunContext) -> PipelineResult:
        """Segment lesions; findings are one mask plus one region per connected lesion; with a
        prior FLAIR (``inputs.priors``), new, enlarging and resolved lesions since it."""
        options: Mapping[str, Any] = ctx.options or {}
        current = self.segment(self.select(inputs), ctx, options)
        comparison = None
        if inputs.priors or inputs.priors_note:
            from pipelines.brain_lesion.prior import follow_up

            comparison = follow_up(self, inputs, current, ctx)
        findings = Findings(
            kinds=(FindingKind.BRAIN_LESION,),
            regions=tuple(current.regions),
            masks=(
                Mask(
                    FindingKind.BRAIN_LESION,
                    current.labels > 0,
                    current.volume.geometry,
                    "brain lesion",
                ),
            ),
            comparison=comparison,
        )
        return self.result(findings)

    def segment(
        self, series: Sequence[SeriesInput], ctx: RunContext, options: Mapping[str, Any]
    ) -> Segmentation:
        """Read, check and segment the series (one per input channel)."""
        import torch

        from pipelines.brain_lesion.halfmax import Visit, refine
        from pipelines.brain_lesion.model import (
            build_inferer,
            mirrored_probability,
            prepare_masked,
        )
        from pipelines.common.components import connected_components

        per_series = [read_datasets(s.files) for s in series]
        self._check_headers(per_series)  # before decoding; the runner's check() read only headers
        volumes = [volume_from_datasets(datasets) for datasets in per_series]
        first = per_series[-1][0]
        identity = (
            str(first.StudyInstanceUID),
            str(first.SeriesInstanceUID),
            str(first.SOPClassUID),
            str(first.get("StudyDate", "")) or None,
        )
        del per_series
        network = self.model(ctx.device)
        bundle = self.bundle(ctx.device)
        prepared = prepare_masked(volumes, bundle, ctx.device)
        grid = prepared.grid
        inferer = build_inferer(bundle, self.option("patch_size", None, options))
        mirror = bool(self.option("mirror", True, options))
        with inference_mode(ctx.device, self.amp):
            prob = mirrored_probability(
                inferer, prepared.image, network, lesion_channel(bundle.metadata), mirror
            )
        probability = grid.source_from_working(prob.cpu())
        brain = grid.source_from_working(torch.from_numpy(prepared.brain.astype(np.float32)))
        min_voxels = _min_voxels(grid, float(self.option("min_lesion_mm", 3.0, options)))
        found = np.asarray((probability > VOXEL_THRESHOLD) & (brain > 0.5))
        mask = found
        if len(volumes) == 1:  # a FLAIR: each lesion the network found at its half-max extent
            found = connected_components(found, min_voxels=min_voxels)[0] > 0
            mask = refine(Visit(volumes[0].array, np.asarray(brain > 0.5)), found)
        regions, labels = _lesions(mask, found, probability, grid, min_voxels)
        scores = self.calibrated(np.asarray([r.score for r in regions], dtype=np.float64))
        point = self.operating_point(options, 0.5)
        regions, labels = _keep_scored(regions, scores, point, labels)
        return Segmentation(volumes[-1], regions, labels, np.asarray(brain > 0.5), *identity)


def _min_voxels(grid: WorkingGrid, min_mm: float) -> int:
    """Voxels of a ``min_mm`` sphere on the source grid, at least ``MIN_LESION_VOXELS``."""
    voxel_ml = float(abs(np.linalg.det(grid.source_affine[:3, :3]))) / 1000.0
    min_ml = np.pi / 6.0 * min_mm**3 / 1000.0
    return max(MIN_LESION_VOXELS, int(np.ceil(min_ml / voxel_ml - 1e-9)))


def _lesions(
    mask: np.ndarray,
    found: np.ndarray,
    probability: np.ndarray,
    grid: WorkingGrid,
    min_voxels: int,
) -> tuple[list[RegionFinding], np.ndarray]:
    """One region per connected component of ``mask`` of at least ``min_voxels``, scored with
    the mean probability (raw) of its voxels that the network ``found``; returns the regions
    and the label volume (0 outside, n on the region ``lesion n``)."""
    from pipelines.common.components import connected_components

    affine = grid.source_affine
    voxel_ml = float(abs(np.linalg.det(affine[:3, :3]))) / 1000.0
    labels, components = connected_components(mask, min_voxels=min_voxels)
    inside = np.where(found, labels, 0).ravel()
    sums = np.bincount(inside, weights=probability.ravel(), minlength=len(components) + 1)
    counts = np.bincount(inside, minlength=len(components) + 1)
    regions = []
    for component in components:
        k, j, i = component.centroid
        centre = (affine @ np.asarray([i, j, k, 1.0]))[:3]
        volume_ml = component.voxels * voxel_ml
        diameter = float((6.0 * volume_ml * 1000.0 / np.pi) ** (1.0 / 3.0))
        regions.append(
            RegionFinding.sphere(
                FindingKind.BRAIN_LESION,
                centre.tolist(),
                round(diameter, 2),
                volume_ml=round(volume_ml, 4),
                score=float(
                    np.clip(sums[component.label] / max(counts[component.label], 1), 0.0, 1.0)
                ),
                tracking_id=f"lesion {component.label}",
            )
        )
    return regions, labels


def _keep_scored(
    regions: list[RegionFinding], scores: np.ndarray, point: float, labels: np.ndarray
) -> tuple[list[RegionFinding], np.ndarray]:
    """The regions whose calibrated score reaches the operating point, with that score, and
    the label volume of just those, renumbered ``lesion n`` -> ``n`` (the burden counts what
    is reported, nothing else)."""
    kept: list[RegionFinding] = []
    relabel = np.zeros(len(regions) + 1, np.int32)
    for n, (region, score) in enumerate(zip(regions, scores, strict=True), start=1):
        if score >= point:
            kept.append(
                dataclasses.replace(
                    region,
                    score=float(np.clip(score, 0.0, 1.0)),
                    tracking_id=f"lesion {len(kept) + 1}",
                )
            )
            relabel[n] = len(kept)
    return kept, relabel[labels]
