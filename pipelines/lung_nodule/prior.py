"""The lung pipeline's use of a prior study: read it, register, match, measure change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dicomnode.pipeline import InputRefused, PipelineInputs, RunContext
from dicomnode.pipeline.contract import PriorInput
from dicomnode.results.changes import Comparison, InstanceRef, interval_days
from pipelines.common.registration import RegistrationError, RigidTransform, register_masks
from pipelines.common.snapshots import snapshots
from pipelines.lung_nodule.followup import (
    MeasuredNodule,
    compare_nodules,
    comparison,
    nodules_from_report,
)
from pipelines.lung_nodule.scan import Scan

if TYPE_CHECKING:
    from pipelines.lung_nodule.pipeline import LungNodulePipeline

__all__ = ["follow_up", "latest_prior"]


def latest_prior(priors: tuple[PriorInput, ...]) -> PriorInput | None:
    """The most recent CT prior (by StudyDate; undated ones last)."""
    ct = [p for p in priors if p.series.modality in ("CT", "")]
    if not ct:
        return None
    return max(ct, key=lambda p: p.study_date or "")


def follow_up(
    pipeline: LungNodulePipeline,
    inputs: PipelineInputs,
    scan: Scan,
    nodules: list[MeasuredNodule],
    ctx: RunContext,
) -> Comparison:
    """Compare ``nodules`` of the current ``scan`` with the latest prior of ``inputs``.

    Without a usable prior, the comparison carries only the reason (``inputs.priors_note``,
    or why the prior could not be used), which the SR states.
    """
    prior = latest_prior(inputs.priors)
    if prior is None:
        return Comparison(note=inputs.priors_note or "no CT among the priors")
    try:
        before = pipeline.read_scan(prior.series.files, ctx)
    except InputRefused as exc:
        ctx.log.warning("lung_nodule: prior unusable: %s", exc.reason)
        return Comparison(note=f"prior study unusable: {exc}"[:1024])
    try:
        transform = register_masks(
            before.lungs.mask, before.lungs.affine, scan.lungs.mask, scan.lungs.affine
        )
    except RegistrationError as exc:
        ctx.log.warning("lung_nodule: registration failed (%s): centres compared as they are", exc)
        transform = RigidTransform.identity()
    ctx.log.info(
        "lung_nodule: prior registered, %.1f deg, %.1f mm shift, residual %.2f mm",
        transform.rotation_deg,
        float((transform.matrix[:3, 3] ** 2).sum() ** 0.5),
        transform.residual_mm,
    )
    evidence: list[InstanceRef] = []
    reported = nodules_from_report(prior.reports, before.study_uid)
    if reported is not None:
        prior_nodules, report = reported
        evidence.append(report)
        ctx.log.info("lung_nodule: prior measurements read from our earlier SR")
    else:
        prior_nodules = pipeline.detect_nodules(before, ctx, ctx.options or {})
    changes = compare_nodules(prior_nodules, nodules, transform)
    evidence.extend(c.prior_source for c in changes if c.prior_source is not None)
    interval = interval_days(before.study_date or prior.study_date, scan.study_date)
    shots = snapshots(
        changes,
        interval,
        (before.volume.array, before.volume.affine()),
        (scan.volume.array, scan.volume.affine()),
    )
    return comparison(
        changes,
        prior_study_uid=before.study_uid,
        prior_study_date=before.study_date or prior.study_date,
        interval=interval,
        evidence=evidence,
        shots=shots,
        note=inputs.priors_note,
    )
