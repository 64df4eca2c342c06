"""TID 1501 groups for the change since a prior study, and the SR's references to the prior.

One group per :class:`~dicomnode.results.changes.RegionChange` (tracking identifier
"<finding> change"): the change (new / increased / no change / decreased / resolved) as a
qualitative evaluation, the volumes at both visits, the volume change in per cent and the
volume doubling time in days as measurements; the prior volume references the prior image it
was measured on (or our earlier SR it was read from) as its source. One more group says whether
a prior study was compared (DCM 122140 "Comparison with Prior Study Done", yes/no), with the
interval in days and a comment: the prior's date, or why no prior was available.

The prior instances go to the Pertinent Other Evidence Sequence (highdicom puts evidence of
another study there). The Predecessor Documents Sequence is not used for them: PS3.3 C.17.2.3
reserves it for earlier versions of the same document, which a report of another study is not.
"""

from __future__ import annotations

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DataSequence

from dicomnode.results import codes as dn_codes
from dicomnode.results.changes import ChangeStatus, Comparison, InstanceRef, RegionChange
from dicomnode.results.codes import KIND_CODES
from dicomnode.results.common import EncodingContext
from dicomnode.results.findings import FindingKind
from dicomnode.results.sr_content import sr_algorithm, tracking

__all__ = [
    "add_private_scheme",
    "change_group",
    "comparison_group",
    "instance_stub",
    "prior_evidence",
]


def _comment(text: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(
        name=dn_codes.COMMENT,
        value=text[:1024],
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )


def change_group(
    change: RegionChange, number: int, comparison: Comparison, ctx: EncodingContext
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 group of one finding's change since the prior study."""
    kc = KIND_CODES[change.kind]
    algorithm = sr_algorithm(ctx)
    measurements = []
    if change.current_volume_ml is not None:
        measurements.append(
            hd.sr.Measurement(
                dn_codes.VOLUME,
                change.current_volume_ml,
                dn_codes.UNIT_MILLILITER,
                algorithm_id=algorithm,
            )
        )
    if change.prior_volume_ml is not None:
        source = change.prior_source
        measurements.append(
            hd.sr.Measurement(
                dn_codes.PRIOR_VOLUME,
                change.prior_volume_ml,
                dn_codes.UNIT_MILLILITER,
                algorithm_id=algorithm,
                referenced_images=(
                    [hd.sr.SourceImageForMeasurement(source.sop_class_uid, source.sop_instance_uid)]
                    if source is not None and _is_image(source)
                    else None
                ),
            )
        )
    percent = change.volume_change_percent
    if percent is not None:
        measurements.append(
            hd.sr.Measurement(
                dn_codes.VOLUME_CHANGE, percent, dn_codes.UNIT_PERCENT, algorithm_id=algorithm
            )
        )
    vdt = change.doubling_time_days(comparison.interval_days)
    if vdt is not None and change.kind is FindingKind.LUNG_NODULE:
        measurements.append(
            hd.sr.Measurement(
                dn_codes.VOLUME_DOUBLING_TIME, vdt, dn_codes.UNIT_DAY, algorithm_id=algorithm
            )
        )
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking(
            ctx, f"{change.tracking_id} change"[:64], "change", str(number)
        ),
        finding_type=kc.type,
        algorithm_id=algorithm,
        finding_sites=[hd.sr.FindingSite(kc.anatomy)],
        measurements=measurements or None,
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(
                dn_codes.CHANGE_SINCE_PRIOR, dn_codes.CHANGE_CODES[change.status.value]
            )
        ],
    )
    if change.prior_source is not None and not _is_image(change.prior_source):
        group[0].ContentSequence.append(
            _comment(f"prior measurement from SR {change.prior_source.sop_instance_uid}")
        )
    return group


def comparison_group(
    comparison: Comparison, kind: FindingKind, ctx: EncodingContext
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 group: was a prior compared (yes/no), the interval, and a comment."""
    kc = KIND_CODES[kind]
    measurements = []
    if comparison.interval_days is not None:
        measurements.append(
            hd.sr.Measurement(
                dn_codes.INTERVAL_SINCE_PRIOR, comparison.interval_days, dn_codes.UNIT_DAY
            )
        )
    if comparison.total_current_ml is not None and comparison.total_prior_ml is not None:
        for code, value in (
            (dn_codes.VOLUME, comparison.total_current_ml),
            (dn_codes.PRIOR_VOLUME, comparison.total_prior_ml),
        ):
            measurements.append(
                hd.sr.Measurement(code, value, dn_codes.UNIT_MILLILITER, derivation=dn_codes.TOTAL)
            )
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking(ctx, "Comparison with prior study", "comparison", kind.value),
        finding_type=kc.type,
        algorithm_id=sr_algorithm(ctx),
        finding_sites=[hd.sr.FindingSite(kc.anatomy)],
        measurements=measurements or None,
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(
                dn_codes.COMPARISON_DONE, dn_codes.YES if comparison.has_prior else dn_codes.NO
            )
        ],
    )
    lines = [_counts(comparison)] if comparison.changes else []
    if comparison.has_prior:
        lines.append(
            f"compared with the prior study of {comparison.prior_study_date or 'unknown date'}"
        )
    if comparison.note:
        lines.append(
            ("prior study not available: " if not comparison.has_prior else "") + comparison.note
        )
    if lines:
        group[0].ContentSequence.append(_comment("; ".join(lines)))
    return group


def _counts(comparison: Comparison) -> str:
    """``"2 new, 1 enlarging, 3 stable"``: the counts by status, in status order."""
    parts = [f"{comparison.count(s)} {s.value}" for s in ChangeStatus if comparison.count(s)]
    return ", ".join(parts)


def _is_image(ref: InstanceRef) -> bool:
    return not ref.sop_class_uid.startswith("1.2.840.10008.5.1.4.1.1.88.")


def instance_stub(study_uid: str, series_uid: str, sop_class_uid: str, sop_uid: str) -> Dataset:
    """A header with just the four UIDs: what highdicom needs of an evidence instance."""
    ds = Dataset()
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_uid
    return ds


def prior_evidence(comparison: Comparison | None) -> list[Dataset]:
    """Header stubs of the prior instances referenced, for the SR's evidence sequences."""
    refs = comparison.evidence if comparison is not None else ()
    return [
        instance_stub(r.study_uid, r.series_uid, r.sop_class_uid, r.sop_instance_uid) for r in refs
    ]


def add_private_scheme(sr: Dataset) -> None:
    """Declare our private coding scheme (Coding Scheme Identification Sequence)."""
    item = Dataset()
    item.CodingSchemeDesignator = dn_codes.PRIVATE_SCHEME
    item.CodingSchemeName = dn_codes.PRIVATE_SCHEME_NAME
    item.CodingSchemeResponsibleOrganization = "dicomnode"
    sr.CodingSchemeIdentificationSequence = DataSequence([item])
