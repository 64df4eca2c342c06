"""Lung nodule follow-up: the current nodules compared with those of a prior CT.

1. *Registration*: the prior's lung mask is laid rigidly onto the current's
   (:func:`pipelines.common.registration.register_masks`), so that nodule centres of the two
   visits compare in one frame whatever the patient's position.
2. *Matching*: current and prior nodules are paired by the Hungarian algorithm on the distance
   between centres after registration, a pair allowed only within ``MATCH_DISTANCE_MM`` (or the
   larger nodule's diameter) and a volume ratio within ``MAX_VOLUME_RATIO`` (size consistency:
   a nodule does not grow eight-fold in one interval, a doubling time shorter than a third of
   it, which no solid nodule shows).
3. *Change*: per nodule, volumes at both visits, volume change and the volume doubling time
   ``interval × ln 2 / ln(V_current / V_prior)`` from the StudyDates; a current nodule without a
   partner is new, a prior one without a partner resolved. A matched nodule is enlarging at a
   volume increase of ``GROWTH_FRACTION`` (25 %, the significant-growth threshold of volumetric
   lung screening, e.g. the European position statement, Oudkerk et al. 2017: below it,
   volumetry at two visits does not tell growth from measurement error), decreasing at the
   same fall, stable between.

The prior's nodules come from our own earlier SR of that study when the node found one
(:attr:`PriorInput.reports`: measurements reused and the SR referenced), else from running the
detector on the prior series.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from dicomnode.results import FindingKind
from dicomnode.results.changes import (
    ChangeSnapshot,
    ChangeStatus,
    Comparison,
    InstanceRef,
    RegionChange,
)
from pipelines.common.registration import RigidTransform

__all__ = [
    "GROWTH_FRACTION",
    "MATCH_DISTANCE_MM",
    "MAX_VOLUME_RATIO",
    "MeasuredNodule",
    "compare_nodules",
    "match_nodules",
    "nodules_from_report",
]

logger = logging.getLogger(__name__)

MATCH_DISTANCE_MM = 10.0
MAX_VOLUME_RATIO = 8.0
GROWTH_FRACTION = 0.25
_SR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
}


@dataclass(frozen=True)
class MeasuredNodule:
    """One nodule of one visit, in that visit's patient coordinates.

    Attributes
    ----------
    center : tuple of float
        Centre (mm).
    volume_mm3 : float
        Segmented volume.
    diameter_mm : float
        Detected size.
    tracking_id : str
        The identifier it is reported under.
    source : InstanceRef, optional
        Where the measurement lies (the slice at its centre, or the SR it was read from).
    score : float, optional
        Calibrated detection probability.
    """

    center: tuple[float, float, float]
    volume_mm3: float
    diameter_mm: float
    tracking_id: str
    source: InstanceRef | None = None
    score: float | None = None


def match_nodules(
    prior: Sequence[MeasuredNodule],
    current: Sequence[MeasuredNodule],
    transform: RigidTransform,
    *,
    max_distance_mm: float = MATCH_DISTANCE_MM,
    max_volume_ratio: float = MAX_VOLUME_RATIO,
) -> list[tuple[int, int]]:
    """Pairs ``(prior index, current index)`` of the same nodule (see the module notes)."""
    if not prior or not current:
        return []
    moved = transform.apply(np.asarray([n.center for n in prior], float))
    here = np.asarray([n.center for n in current], float)
    distance = np.linalg.norm(moved[:, None, :] - here[None, :, :], axis=2)
    reach = np.maximum(
        max_distance_mm,
        np.maximum.outer([n.diameter_mm for n in prior], [n.diameter_mm for n in current]),
    )
    before = np.maximum([n.volume_mm3 for n in prior], 1e-6)
    after = np.maximum([n.volume_mm3 for n in current], 1e-6)
    ratio = np.abs(np.log(after[None, :] / before[:, None]))
    allowed = (distance <= reach) & (ratio <= np.log(max_volume_ratio))
    cost = np.where(allowed, distance, 1e6)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if allowed[r, c]]


def _status(before: float, after: float, growth: float) -> ChangeStatus:
    if after >= before * (1.0 + growth):
        return ChangeStatus.ENLARGING
    if after <= before * (1.0 - growth):
        return ChangeStatus.DECREASING
    return ChangeStatus.STABLE


def compare_nodules(
    prior: Sequence[MeasuredNodule],
    current: Sequence[MeasuredNodule],
    transform: RigidTransform,
    *,
    growth_fraction: float = GROWTH_FRACTION,
    kind: FindingKind = FindingKind.LUNG_NODULE,
) -> list[RegionChange]:
    """One change per nodule of either visit: matched ones first (current order), then new,
    then resolved."""
    pairs = match_nodules(prior, current, transform)
    partner = {c: p for p, c in pairs}
    out = []
    for c, nodule in enumerate(current):
        p = partner.get(c)
        before = prior[p] if p is not None else None
        out.append(
            RegionChange(
                kind=kind,
                status=(
                    _status(before.volume_mm3, nodule.volume_mm3, growth_fraction)
                    if before is not None
                    else ChangeStatus.NEW
                ),
                tracking_id=nodule.tracking_id,
                prior_center=before.center if before is not None else None,
                current_center=nodule.center,
                prior_volume_ml=before.volume_mm3 / 1000.0 if before is not None else None,
                current_volume_ml=nodule.volume_mm3 / 1000.0,
                prior_source=before.source if before is not None else None,
            )
        )
    out.sort(key=lambda change: change.status is ChangeStatus.NEW)
    matched = set(partner.values())
    for p, nodule in enumerate(prior):
        if p not in matched:
            out.append(
                RegionChange(
                    kind=kind,
                    status=ChangeStatus.RESOLVED,
                    tracking_id=f"prior {nodule.tracking_id}"[:64],
                    prior_center=nodule.center,
                    prior_volume_ml=nodule.volume_mm3 / 1000.0,
                    prior_source=nodule.source,
                )
            )
    return out


def nodules_from_report(
    paths: Sequence[Path], prior_study_uid: str
) -> tuple[list[MeasuredNodule], InstanceRef] | None:
    """The lung nodules of our own earlier SR of the prior study, if one is among ``paths``.

    Only SRs of ``prior_study_uid`` whose regions carry a volume are used (an SR of another
    study, or an unreadable one, is skipped with a log line); the newest by content date wins.
    """
    import pydicom

    from dicomnode.results import findings_from_sr
    from dicomnode.results.errors import EncodingError

    best: tuple[str, list[MeasuredNodule], InstanceRef] | None = None
    for path in paths:
        try:
            ds = pydicom.dcmread(path)
            if str(ds.get("SOPClassUID", "")) not in _SR_CLASSES:
                continue
            if str(ds.StudyInstanceUID) != prior_study_uid:
                continue
            findings = findings_from_sr(ds)
        except (OSError, ValueError, AttributeError, EncodingError) as exc:
            logger.warning("prior report %s skipped: %s", path.name, exc)
            continue
        ref = InstanceRef(
            str(ds.StudyInstanceUID),
            str(ds.SeriesInstanceUID),
            str(ds.SOPClassUID),
            str(ds.SOPInstanceUID),
        )
        nodules = [
            MeasuredNodule(
                r.center,
                float(r.volume_ml) * 1000.0,
                float(r.diameter_mm or 0.0),
                r.tracking_id or f"nodule {n}",
                ref,
            )
            for n, r in enumerate(findings.regions, start=1)
            if r.kind is FindingKind.LUNG_NODULE and r.volume_ml is not None
        ]
        stamp = f"{ds.get('ContentDate', '')}{ds.get('ContentTime', '')}"
        if best is None or stamp > best[0]:
            best = (stamp, nodules, ref)
    return (best[1], best[2]) if best is not None else None


def comparison(
    changes: Sequence[RegionChange],
    *,
    prior_study_uid: str,
    prior_study_date: str | None,
    interval: int | None,
    evidence: Sequence[InstanceRef],
    shots: tuple[ChangeSnapshot, ...],
    note: str | None = None,
) -> Comparison:
    """The :class:`Comparison` of a follow-up, its evidence deduplicated."""
    return Comparison(
        prior_study_uid=prior_study_uid,
        prior_study_date=prior_study_date,
        interval_days=interval,
        changes=tuple(changes),
        evidence=tuple(dict.fromkeys(evidence)),
        note=note,
        snapshots=shots,
        total_prior_ml=sum(c.prior_volume_ml or 0.0 for c in changes),
        total_current_ml=sum(c.current_volume_ml or 0.0 for c in changes),
    )
