"""Comprehensive 3D SR holding a TID 1500 measurement report of the findings."""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from dicomnode.results.codes import procedure_code
from dicomnode.results.common import MANUFACTURER, EncodingContext
from dicomnode.results.errors import EncodingError
from dicomnode.results.findings import FindingKind, Findings, VolumeGeometry
from dicomnode.results.sources import geometry_from_datasets, index_sources
from dicomnode.results.sr_changes import (
    add_private_scheme,
    change_group,
    comparison_group,
    instance_stub,
    prior_evidence,
)
from dicomnode.results.sr_content import (
    absent_group,
    classification_group,
    mask_group,
    region_group,
)

__all__ = ["encode_sr"]

_Group = (
    hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
    | hd.sr.MeasurementsAndQualitativeEvaluations
)


def _observer(ctx: EncodingContext) -> hd.sr.ObservationContext:
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=ctx.uid("sr", "device"),
        name=MANUFACTURER,
        manufacturer_name=MANUFACTURER,
        model_name=f"{ctx.algorithm.name} {ctx.algorithm.version}"[:64],
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.cid270.Device, observer_identifying_attributes=device
        )
    )


def _geometry(findings: Findings, sources: Sequence[Dataset]) -> VolumeGeometry | None:
    for mask in findings.masks:
        return mask.geometry
    if not findings.regions:
        return None
    return geometry_from_datasets(sources)


def _groups(
    findings: Findings, sources: Sequence[Dataset], ctx: EncodingContext, seg: Dataset | None
) -> list[_Group]:
    by_uid = index_sources(sources)
    groups: list[_Group] = []
    geometry = _geometry(findings, sources)
    if geometry is not None:
        groups.extend(
            region_group(region, n, geometry, by_uid, ctx)
            for n, region in enumerate(findings.regions, start=1)
        )
    if seg is not None:
        segmented = [m for m in findings.masks if not m.is_empty]
        groups.extend(mask_group(m, i + 1, seg, ctx) for i, m in enumerate(segmented))
    for n, item in enumerate(findings.classifications, start=1):
        groups.append(classification_group(item, n, sources, ctx))
    found: set[FindingKind] = {r.kind for r in findings.regions}
    found |= {c.kind for c in findings.classifications}
    found |= {m.kind for m in findings.masks if not m.is_empty}
    groups.extend(absent_group(kind, ctx) for kind in findings.kinds if kind not in found)
    comparison = findings.comparison
    if comparison is not None:
        groups.append(comparison_group(comparison, findings.kinds[0], ctx))
        groups.extend(
            change_group(change, n, comparison, ctx)
            for n, change in enumerate(comparison.changes, start=1)
        )
    return groups


def _previous_versions(ctx: EncodingContext) -> list[Dataset]:
    """Predecessor SR documents, for the Predecessor Documents Sequence."""
    return [
        instance_stub(
            p.study_instance_uid, p.series_instance_uid, p.sop_class_uid, p.sop_instance_uid
        )
        for p in ctx.predecessors_of(set(hd.sr.SOP_CLASS_UIDS))
    ]


def encode_sr(
    findings: Findings,
    sources: Sequence[Dataset],
    ctx: EncodingContext,
    *,
    seg: Dataset | None = None,
) -> Dataset:
    """A Comprehensive 3D SR with a TID 1500 measurement report of ``findings``.

    One measurement group per region finding (TID 1411, SCOORD3D volume surface), one per
    segmented kind when ``seg`` is given (TID 1411 referencing the segment), one per
    classification (TID 1501), and one "<type>: Absent" group (TID 1501) for every kind in
    ``findings.kinds`` with no finding, so an empty result says explicitly that nothing was
    found.

    Parameters
    ----------
    findings : Findings
        What to report.
    sources : sequence of pydicom.Dataset
        The source series; all are referenced as evidence.
    ctx : EncodingContext
        Algorithm, UIDs, series number, predecessor.
    seg : pydicom.Dataset, optional
        The SEG encoded from ``findings.masks``, to be referenced.

    Returns
    -------
    pydicom.Dataset
        The SR document.
    """
    evidence = list(sources) + ([seg] if seg is not None else [])
    evidence += prior_evidence(findings.comparison)
    try:
        report = hd.sr.MeasurementReport(
            observation_context=_observer(ctx),
            procedure_reported=procedure_code(str(sources[0].get("Modality", ""))),
            imaging_measurements=_groups(findings, sources, ctx, seg),
            title=codes.cid7021.ImagingMeasurementReport,
        )
        sr = hd.sr.Comprehensive3DSR(
            evidence=evidence,
            content=report[0],
            series_instance_uid=ctx.uid("sr", "series"),
            series_number=ctx.series_number,
            sop_instance_uid=ctx.uid("sr", "instance"),
            instance_number=1,
            manufacturer=MANUFACTURER,
            is_complete=True,
            is_final=False,
            is_verified=False,
            previous_versions=_previous_versions(ctx) or None,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise EncodingError(f"highdicom refused the report: {exc}", output="sr") from exc
    if findings.comparison is not None:
        add_private_scheme(sr)
    sr.SeriesDescription = ctx.series_description("SR")
    sr.ManufacturerModelName = MANUFACTURER
    sr.SoftwareVersions = ctx.software_version
    return sr
