"""The brain pipeline's use of a prior FLAIR: segment it, register, compare lesions."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from dicomnode.pipeline import InputRefused, PipelineInputs, RunContext
from dicomnode.results.changes import Comparison, interval_days
from pipelines.brain_lesion.followup import Visit, compare_lesions
from pipelines.brain_lesion.segmentation import Segmentation
from pipelines.common.registration import (
    RegistrationError,
    RigidTransform,
    refine_with_images,
    register_masks,
)
from pipelines.common.snapshots import snapshots

if TYPE_CHECKING:
    from pipelines.brain_lesion.pipeline import BrainLesionPipeline

__all__ = ["follow_up"]


def _register(before: Segmentation, current: Segmentation, ctx: RunContext) -> RigidTransform:
    """Brain masks, then the FLAIR images themselves; identity when that fails."""
    prior_affine, current_affine = before.volume.affine(), current.volume.affine()
    try:
        coarse = register_masks(before.brain, prior_affine, current.brain, current_affine)
        return refine_with_images(
            before.volume.array,
            prior_affine,
            before.brain,
            current.volume.array,
            current_affine,
            coarse,
        )
    except RegistrationError as exc:
        ctx.log.warning("brain_lesion: registration failed (%s): grids compared as they are", exc)
        return RigidTransform.identity()


def follow_up(
    pipeline: BrainLesionPipeline,
    inputs: PipelineInputs,
    current: Segmentation,
    ctx: RunContext,
) -> Comparison:
    """Compare the current lesions with those of the latest MR prior of ``inputs``.

    Only a single-channel (FLAIR) bundle compares: the prior is one series. Without a usable
    prior the comparison carries only the reason, which the SR states.
    """
    mr = [p for p in inputs.priors if p.series.modality in ("MR", "")]
    if not mr:
        return Comparison(note=inputs.priors_note or "no MR among the priors")
    prior = max(mr, key=lambda p: p.study_date or "")
    if len(pipeline.roles()) != 1:
        return Comparison(note="prior comparison needs a single-channel (FLAIR) bundle")
    try:
        before = pipeline.segment([prior.series], ctx, ctx.options or {})
    except InputRefused as exc:
        ctx.log.warning("brain_lesion: prior unusable: %s", exc.reason)
        return Comparison(note=f"prior study unusable: {exc.reason}"[:1024])
    transform = _register(before, current, ctx)
    ctx.log.info(
        "brain_lesion: prior registered, %.1f deg, residual %.2f mm",
        transform.rotation_deg,
        transform.residual_mm,
    )
    changes = compare_lesions(
        before.labels,
        before.volume.affine(),
        current.labels,
        current.volume.affine(),
        transform,
        tracking_ids=[r.tracking_id for r in current.regions],
        visits=(
            Visit(before.volume.array, before.brain),
            Visit(current.volume.array, current.brain),
        ),
    )
    changes = [
        replace(c, prior_source=before.instance_at(c.prior_center)) if c.prior_center else c
        for c in changes
    ]
    return Comparison(
        prior_study_uid=before.study_uid,
        prior_study_date=before.study_date or prior.study_date,
        interval_days=interval_days(before.study_date or prior.study_date, current.study_date),
        changes=tuple(changes),
        evidence=tuple(dict.fromkeys(c.prior_source for c in changes if c.prior_source)),
        note=inputs.priors_note,
        snapshots=snapshots(
            changes,
            None,
            (before.volume.array, before.volume.affine()),
            (current.volume.array, current.volume.affine()),
        ),
        total_prior_ml=float(sum(r.volume_ml or 0.0 for r in before.regions)),
        total_current_ml=float(sum(r.volume_ml or 0.0 for r in current.regions)),
    )
