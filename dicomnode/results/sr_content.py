"""TID 1500 measurement groups for each kind of finding."""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from dicomnode.results import codes as dn_codes
from dicomnode.results.codes import KIND_CODES
from dicomnode.results.common import MANUFACTURER, EncodingContext
from dicomnode.results.errors import EncodingError
from dicomnode.results.findings import (
    Classification,
    FindingKind,
    Laterality,
    Mask,
    RegionFinding,
    RegionShape,
    VolumeGeometry,
)
from dicomnode.results.sources import laterality_of

__all__ = [
    "absent_group",
    "classification_group",
    "mask_group",
    "region_graphic_data",
    "region_group",
    "sr_algorithm",
    "tracking",
]


_GRAPHIC_TYPES = {
    RegionShape.POINT: hd.sr.GraphicTypeValues3D.POINT,
    RegionShape.ELLIPSOID: hd.sr.GraphicTypeValues3D.ELLIPSOID,
    RegionShape.BOX: hd.sr.GraphicTypeValues3D.POLYGON,  # closed surface of 6 faces
}


def sr_algorithm(ctx: EncodingContext) -> hd.sr.AlgorithmIdentification:
    """TID 4019 algorithm identification: pipeline name and version; the weights' name,
    version and sha256, and whether they are demo weights, as parameters."""
    alg = ctx.algorithm
    parameters = [f"{key}={value}" for key, value in alg.parameters().items()]
    return hd.sr.AlgorithmIdentification(
        name=alg.name,
        version=alg.version,
        parameters=parameters or None,
        family=codes.cid7162.ArtificialIntelligence,
        manufacturer=MANUFACTURER,
    )


def tracking(ctx: EncodingContext, identifier: str, *key: str) -> hd.sr.TrackingIdentifier:
    return hd.sr.TrackingIdentifier(uid=ctx.uid("sr", "tracking", *key), identifier=identifier)


def region_graphic_data(region: RegionFinding) -> list[np.ndarray]:
    """SCOORD3D graphic data of a region: 1 POINT, 1 ELLIPSOID (6 points), or 6 box faces."""
    c = np.asarray(region.center)
    if region.shape is RegionShape.POINT:
        return [c.reshape(1, 3)]
    axes = sorted((np.asarray(a) for a in region.axes), key=lambda a: -float(np.linalg.norm(a)))
    if region.shape is RegionShape.ELLIPSOID:  # major, minor, third axis endpoints
        return [np.stack([p for a in axes for p in (c + a, c - a)])]
    faces = []
    for i in range(3):
        n, u, v = axes[i], axes[(i + 1) % 3], axes[(i + 2) % 3]
        for sign in (1.0, -1.0):
            centre = c + sign * n
            corners = [centre + u + v, centre + u - v, centre - u - v, centre - u + v]
            faces.append(np.stack([*corners, corners[0]]))  # closed polygon
    return faces


def _region_slices(region: RegionFinding, geometry: VolumeGeometry) -> list[int]:
    """Indices of the slices that the region intersects (at least the nearest one)."""
    centre = np.asarray(region.center)
    offsets = (np.asarray(geometry.positions) - centre) @ geometry.normal
    along = np.abs(np.asarray(region.axes).reshape(-1, 3) @ geometry.normal)
    if region.shape is RegionShape.BOX:  # half-extent of a box along the normal
        extent = float(along.sum())
    else:  # of an ellipsoid (0 for a point)
        extent = float(np.sqrt((along**2).sum()))
    hits = [int(k) for k in np.flatnonzero(np.abs(offsets) <= extent + 1e-6)]
    return hits or [int(np.argmin(np.abs(offsets)))]


def _source_images(
    keys: Sequence[tuple[str, int | None]], sources: dict[str, Dataset]
) -> list[hd.sr.SourceImageForSegmentation]:
    missing = {uid for uid, _ in keys} - sources.keys()
    if missing:
        raise EncodingError(
            f"region lies on {len(missing)} instance(s) not in sources", output="sr"
        )
    frames: dict[str, list[int]] = {}
    for uid, frame in keys:
        frames.setdefault(uid, [])
        if frame is not None:
            frames[uid].append(frame)
    return [
        hd.sr.SourceImageForSegmentation.from_source_image(sources[uid], numbers or None)
        for uid, numbers in frames.items()
    ]


def region_group(
    region: RegionFinding,
    number: int,
    geometry: VolumeGeometry,
    sources: dict[str, Dataset],
    ctx: EncodingContext,
) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    """TID 1411 group: SCOORD3D volume surface, diameter, volume, detection score."""
    kc = KIND_CODES[region.kind]
    slices = _region_slices(region, geometry)
    keys = [
        (
            geometry.sop_instance_uids[k],
            geometry.frame_numbers[k] if geometry.frame_numbers else None,
        )
        for k in slices
    ]
    surface = hd.sr.VolumeSurface(
        graphic_type=_GRAPHIC_TYPES[region.shape],
        graphic_data=region_graphic_data(region),
        frame_of_reference_uid=geometry.frame_of_reference_uid,
        source_images=_source_images(keys, sources),
    )
    algorithm = sr_algorithm(ctx)
    measurements = []
    if region.diameter_mm is not None:
        measurements.append(
            hd.sr.Measurement(
                dn_codes.DIAMETER,
                region.diameter_mm,
                dn_codes.UNIT_MILLIMETER,
                algorithm_id=algorithm,
            )
        )
    if region.volume_ml is not None:
        measurements.append(
            hd.sr.Measurement(
                dn_codes.VOLUME, region.volume_ml, dn_codes.UNIT_MILLILITER, algorithm_id=algorithm
            )
        )
    if region.score is not None:
        measurements.append(
            hd.sr.Measurement(
                dn_codes.CERTAINTY_OF_FINDING,
                region.score,
                dn_codes.UNIT_NONE,
                algorithm_id=algorithm,
            )
        )
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking(
            ctx, region.tracking_id or f"{kc.title} {number}", "region", str(number)
        ),
        referenced_volume_surface=surface,
        finding_type=kc.type,
        finding_category=kc.category,
        algorithm_id=algorithm,
        finding_sites=[hd.sr.FindingSite(kc.anatomy)],
        measurements=measurements or None,
    )


def mask_group(
    mask: Mask, segment_number: int, seg: Dataset, ctx: EncodingContext
) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    """TID 1411 group referencing a SEG segment: the total of all findings of the mask.

    Its own group and its own concept, so that a reader cannot add it to the per-finding
    volumes: tracking identifier "<kind> burden (all)", the volume with derivation "Total"
    (SCT 255619001, CID 7464) and method "Sum of segmented voxel volumes" (DCM 126030).
    """
    kc = KIND_CODES[mask.kind]
    algorithm = sr_algorithm(ctx)
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking(ctx, f"{kc.title} burden (all)", "mask", mask.kind.value),
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=str(seg.SOPClassUID),
            sop_instance_uid=str(seg.SOPInstanceUID),
            segment_number=segment_number,
            source_series=hd.sr.SourceSeriesForSegmentation(
                str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)
            ),
        ),
        finding_type=kc.type,
        finding_category=kc.category,
        algorithm_id=algorithm,
        finding_sites=[hd.sr.FindingSite(kc.anatomy)],
        measurements=[
            hd.sr.Measurement(
                dn_codes.VOLUME,
                mask.volume_ml,
                dn_codes.UNIT_MILLILITER,
                derivation=dn_codes.TOTAL,
                method=dn_codes.SUM_OF_VOXEL_VOLUMES,
                algorithm_id=algorithm,
            )
        ],
    )


def classification_group(
    item: Classification, number: int, sources: Sequence[Dataset], ctx: EncodingContext
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 group for one classification (per breast for mammography).

    Suspicion score: NUM (DCM 111047 "Probability of cancer", UCUM "1"). Density: CODE
    (SCT 129715009 "Breast composition") with a CID 6000 value. Finding site: breast with
    laterality (CID 244). Per-class probabilities have no standard concept to carry their
    class label, so they are shown only on the summary image.
    """
    kc = KIND_CODES[item.kind]
    side = item.laterality
    wanted = set(item.sop_instance_uids)
    images = [
        ds
        for ds in sources
        if (str(ds.SOPInstanceUID) in wanted)
        or (not wanted and (side is None or laterality_of(ds) == side.value))
    ]
    algorithm = sr_algorithm(ctx)
    measurements = []
    if item.score is not None:
        measurements.append(
            hd.sr.Measurement(
                dn_codes.PROBABILITY_OF_CANCER,
                item.score,
                dn_codes.UNIT_NONE,
                algorithm_id=algorithm,
            )
        )
    evaluations = []
    if item.density is not None:
        evaluations.append(
            hd.sr.QualitativeEvaluation(
                dn_codes.BREAST_COMPOSITION, dn_codes.DENSITY_CODES[item.density]
            )
        )
    side_text = {Laterality.LEFT: "Left", Laterality.RIGHT: "Right", None: "Whole"}[side]
    laterality = dn_codes.LATERALITY_CODES[side] if side is not None else None
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking(
            ctx, f"{side_text} {kc.anatomy.meaning.lower()} assessment", "class", str(number)
        ),
        finding_type=kc.type,
        algorithm_id=algorithm,
        finding_sites=[hd.sr.FindingSite(kc.anatomy, laterality=laterality)],
        measurements=measurements or None,
        qualitative_evaluations=evaluations or None,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(ds) for ds in images]
        or None,
    )


def absent_group(
    kind: FindingKind, ctx: EncodingContext
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 group saying "<finding type>: Absent" for a kind that nothing was found of."""
    kc = KIND_CODES[kind]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking(ctx, f"No {kc.title.lower()} found", "absent", kind.value),
        finding_type=kc.type,
        algorithm_id=sr_algorithm(ctx),
        finding_sites=[hd.sr.FindingSite(kc.anatomy)],
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(kc.type, dn_codes.ABSENT)],
    )
