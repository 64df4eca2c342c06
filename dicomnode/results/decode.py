"""Reading findings back from a TID 1500 SR made by :func:`dicomnode.results.encode`.

Used by the round-trip tests and by tools that show what a node sent (e.g. the demo).
Masks are not recovered from the SR (they live in the SEG); coordinates come back as float32
(SCOORD3D) and measurements as decimal strings (DS), so compare with a tolerance.
"""

from __future__ import annotations

from collections.abc import Iterable

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from dicomnode.results import codes as dn_codes
from dicomnode.results.codes import DENSITY_CODES, KIND_CODES, LATERALITY_CODES
from dicomnode.results.errors import EncodingError
from dicomnode.results.findings import (
    BreastDensity,
    Classification,
    FindingKind,
    Findings,
    Laterality,
    RegionFinding,
    RegionShape,
)
from dicomnode.results.geometry import as_vector

__all__ = ["findings_from_sr"]

_SHAPES = {
    "POINT": RegionShape.POINT,
    "ELLIPSOID": RegionShape.ELLIPSOID,
    "POLYGON": RegionShape.BOX,
}


def _lookup(table: dict, code: object) -> object | None:
    for key, value in table.items():
        if code == value:
            return key
    return None


def _kind(code: object) -> FindingKind:
    for kind, kc in KIND_CODES.items():
        if code == kc.type:
            return kind
    raise EncodingError(f"finding type {code} is not one dicomnode encodes")


_Group = (
    hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
    | hd.sr.MeasurementsAndQualitativeEvaluations
)


def _measurements(group: _Group) -> dict[Code, float]:
    return {
        Code(m.name.value, m.name.scheme_designator, m.name.meaning): float(m.value)
        for m in group.get_measurements()
    }


def _region(group: hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations) -> RegionFinding:
    surface = group.roi
    if not isinstance(surface, hd.sr.VolumeSurface):
        raise EncodingError("region group holds no volume surface")
    data = surface.graphic_data
    elements = [
        np.asarray(e, dtype=float).reshape(-1, 3)
        for e in ([data] if isinstance(data, np.ndarray) else data)
    ]
    shape = _SHAPES[surface.graphic_type.value]
    if shape is RegionShape.BOX:
        centre = np.unique(np.concatenate(elements).round(4), axis=0).mean(axis=0)
        axes = [elements[2 * i][:4].mean(axis=0) - centre for i in range(3)]
    else:
        centre = elements[0].mean(axis=0)
        pts = elements[0]
        axes = [(pts[2 * i] - pts[2 * i + 1]) / 2 for i in range(len(pts) // 2)]
    values = _measurements(group)
    return RegionFinding(
        kind=_kind(group.finding_type),
        shape=shape,
        center=as_vector("center", centre.tolist()),
        axes=tuple(as_vector("axis", a.tolist()) for a in axes),
        diameter_mm=values.get(dn_codes.DIAMETER),
        volume_ml=values.get(dn_codes.VOLUME),
        score=values.get(dn_codes.CERTAINTY_OF_FINDING),
        tracking_id=group.tracking_identifier or "",
    )


def _classification(group: hd.sr.MeasurementsAndQualitativeEvaluations) -> Classification:
    site = group.finding_sites[0] if group.finding_sites else None
    laterality = _lookup(LATERALITY_CODES, site.laterality) if site is not None else None
    density = None
    for item in group.get_qualitative_evaluations():
        if item.name == dn_codes.BREAST_COMPOSITION:
            density = _lookup(DENSITY_CODES, item.value)
    uids = [
        str(ref.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
        for ref in group[0].ContentSequence
        if ref.ValueType == "IMAGE"
    ]
    return Classification(
        kind=_kind(group.finding_type),
        laterality=laterality if isinstance(laterality, Laterality) else None,
        score=_measurements(group).get(dn_codes.PROBABILITY_OF_CANCER),
        density=density if isinstance(density, BreastDensity) else None,
        sop_instance_uids=tuple(uids),
    )


def _is_absent(group: hd.sr.MeasurementsAndQualitativeEvaluations) -> bool:
    return any(q.value == dn_codes.ABSENT for q in group.get_qualitative_evaluations())


def _is_change(group: hd.sr.MeasurementsAndQualitativeEvaluations) -> bool:
    """A group about the change since a prior study (:mod:`dicomnode.results.sr_changes`)."""
    names = (dn_codes.CHANGE_SINCE_PRIOR, dn_codes.COMPARISON_DONE)
    return any(q.name in names for q in group.get_qualitative_evaluations())


def findings_from_sr(sr: Dataset) -> Findings:
    """The findings an SR made by :func:`encode` reports (regions and classifications; the
    groups of the change since a prior study are not findings and are skipped).

    Parameters
    ----------
    sr : pydicom.Dataset
        A Comprehensive 3D SR holding a TID 1500 report, e.g. from :func:`highdicom.sr.srread`.

    Returns
    -------
    Findings
        Kinds (including those reported absent), regions and classifications.
    """
    try:
        report = hd.sr.Comprehensive3DSR.from_dataset(sr, copy=False).content
        if not isinstance(report, hd.sr.MeasurementReport):
            raise EncodingError("SR content is not a TID 1500 measurement report")
        volumetric = report.get_volumetric_roi_measurement_groups()
        image_groups = report.get_image_measurement_groups()
    except (AttributeError, ValueError, KeyError) as exc:
        raise EncodingError(f"cannot read the SR: {exc}") from exc
    regions = [_region(g) for g in volumetric if g.reference_type == codes.DCM.VolumeSurface]
    masks = [
        _kind(g.finding_type) for g in volumetric if g.reference_type != codes.DCM.VolumeSurface
    ]
    image_groups = [g for g in image_groups if not _is_change(g)]
    absent = [_kind(g.finding_type) for g in image_groups if _is_absent(g)]
    classes = [_classification(g) for g in image_groups if not _is_absent(g)]
    kinds = _unique([*absent, *(r.kind for r in regions), *masks, *(c.kind for c in classes)])
    return Findings(kinds=tuple(kinds), regions=tuple(regions), classifications=tuple(classes))


def _unique(kinds: Iterable[FindingKind]) -> list[FindingKind]:
    return list(dict.fromkeys(kinds))
