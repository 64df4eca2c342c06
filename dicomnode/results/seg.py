"""Binary DICOM Segmentation (SEG) of the findings' masks, one segment per finding kind."""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from dicomnode.results.codes import KIND_CODES
from dicomnode.results.common import MANUFACTURER, EncodingContext
from dicomnode.results.errors import EncodingError
from dicomnode.results.findings import Findings, Mask
from dicomnode.results.sources import index_sources

__all__ = ["algorithm_identification", "encode_seg", "related_series"]

_SliceKey = tuple[str, int | None]


def algorithm_identification(ctx: EncodingContext) -> hd.AlgorithmIdentificationSequence:
    """Algorithm Identification Sequence: pipeline name and version; the weights' name,
    version and sha256, and whether they are demo weights, as parameters."""
    alg = ctx.algorithm
    parameters = alg.parameters()
    return hd.AlgorithmIdentificationSequence(
        name=alg.name,
        family=codes.cid7162.ArtificialIntelligence,
        version=alg.version,
        source=MANUFACTURER,
        parameters=parameters or None,
    )


def related_series(ctx: EncodingContext, sop_class_uid: str) -> list[Dataset]:
    """Related Series Sequence naming the series of the predecessors of the same SOP Class.

    No code in CID 7210 means "replaces", so the (Type 2) purpose of reference is left empty.
    """
    items = []
    for pred in ctx.predecessors_of({sop_class_uid}):
        item = Dataset()
        item.StudyInstanceUID = pred.study_instance_uid
        item.SeriesInstanceUID = pred.series_instance_uid
        item.PurposeOfReferenceCodeSequence = []
        items.append(item)
    return items


def _slice_keys(masks: Sequence[Mask]) -> list[_SliceKey]:
    """Every source slice (UID, frame number) of the masks' geometries, in first-seen order.

    All of them are passed to highdicom, so the SEG references every source instance
    (Referenced Series Sequence) while empty frames are still omitted.
    """
    keys: dict[_SliceKey, None] = {}
    for mask in masks:
        geo = mask.geometry
        for k in range(geo.shape[0]):
            frame = geo.frame_numbers[k] if geo.frame_numbers else None
            keys[(geo.sop_instance_uids[k], frame)] = None
    return list(keys)


def _stack(
    masks: Sequence[Mask], sources: dict[str, Dataset], keys: list[_SliceKey]
) -> tuple[list[Dataset], np.ndarray]:
    """Source images and a (frames, rows, columns, segments) array aligned with them."""
    uids = {uid for uid, _ in keys}
    missing = sorted(uids - sources.keys())
    if missing:
        raise EncodingError(
            f"mask references {len(missing)} instance(s) not in sources", output="seg"
        )
    first = sources[next(iter(uids))]
    rows, columns = int(first.Rows), int(first.Columns)
    multi_frame = any(frame is not None for _, frame in keys)
    if multi_frame:
        if len(uids) != 1:
            raise EncodingError("multi-frame masks must reference 1 source instance", output="seg")
        images = [first]
        n_frames = int(first.get("NumberOfFrames", 1))
        if max(frame or 0 for _, frame in keys) > n_frames:
            raise EncodingError(
                f"mask references frames beyond the source's {n_frames}", output="seg"
            )
        position = {key: key[1] - 1 for key in keys}  # type: ignore[operator]
    else:
        images = [sources[uid] for uid, _ in keys]
        n_frames = len(keys)
        position = {key: i for i, key in enumerate(keys)}
    array = np.zeros((n_frames, rows, columns, len(masks)), dtype=np.uint8)
    for s, mask in enumerate(masks):
        geo = mask.geometry
        if (geo.rows, geo.columns) != (rows, columns):
            raise EncodingError(
                f"mask slices are {geo.rows}x{geo.columns}, sources are {rows}x{columns}",
                output="seg",
            )
        for k in range(geo.shape[0]):
            key = (geo.sop_instance_uids[k], geo.frame_numbers[k] if geo.frame_numbers else None)
            if key in position:
                array[position[key], :, :, s] |= mask.array[k].astype(np.uint8)
    return images, array


def encode_seg(
    findings: Findings, sources: Sequence[Dataset], ctx: EncodingContext
) -> Dataset | None:
    """A BINARY SEG of the non-empty masks, or None when every mask is empty.

    Parameters
    ----------
    findings : Findings
        Masks to encode (one segment per mask, in order).
    sources : sequence of pydicom.Dataset
        The source series (headers suffice).
    ctx : EncodingContext
        Algorithm, UIDs, series number.

    Returns
    -------
    pydicom.Dataset or None
        The Segmentation instance; frames without any set pixel are omitted.
    """
    masks = [m for m in findings.masks if not m.is_empty]
    if not masks:
        return None
    keys = _slice_keys(masks)
    images, array = _stack(masks, index_sources(sources), keys)
    algorithm = algorithm_identification(ctx)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i + 1,
            segment_label=(mask.label or KIND_CODES[mask.kind].title)[:64],
            segmented_property_category=KIND_CODES[mask.kind].category,
            segmented_property_type=KIND_CODES[mask.kind].type,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=ctx.uid("seg", "segment", mask.kind.value),
            tracking_id=f"{KIND_CODES[mask.kind].title} mask",
            anatomic_regions=[KIND_CODES[mask.kind].anatomy],
        )
        for i, mask in enumerate(masks)
    ]
    try:
        seg = hd.seg.Segmentation(
            source_images=images,
            pixel_array=array,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=ctx.uid("seg", "series"),
            series_number=ctx.series_number + 1,
            sop_instance_uid=ctx.uid("seg", "instance"),
            instance_number=1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=MANUFACTURER,
            software_versions=ctx.software_version,
            device_serial_number="0",
            content_description=f"{ctx.algorithm.name} masks {ctx.algorithm.label}"[:64],
            content_creator_name=f"{MANUFACTURER}^",
            content_label="DICOMNODE",
            omit_empty_frames=True,
        )
    except (ValueError, TypeError) as exc:
        raise EncodingError(f"highdicom refused the segmentation: {exc}", output="seg") from exc
    seg.SeriesDescription = ctx.series_description("SEG")
    related = related_series(ctx, str(seg.SOPClassUID))
    if related:
        seg.RelatedSeriesSequence = related
    return seg
