"""Reading the source series: checks, look-up by UID, geometry, display pixels."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import pixel_array

from dicomnode.results.errors import EncodingError
from dicomnode.results.findings import Vector3, VolumeGeometry

__all__ = [
    "check_sources",
    "display_slice",
    "frame_group",
    "geometry_from_datasets",
    "index_sources",
    "laterality_of",
    "main_stack",
    "rescale_of",
]


def check_sources(sources: Sequence[Dataset]) -> None:
    """Raise :class:`EncodingError` unless ``sources`` are one study's distinct instances."""
    if not sources:
        raise EncodingError("sources must hold at least 1 dataset of the source series")
    studies = {str(ds.get("StudyInstanceUID", "")) for ds in sources}
    if len(studies) != 1 or "" in studies:
        raise EncodingError(f"sources must belong to exactly 1 study, got {len(studies)}")
    uids = [str(ds.SOPInstanceUID) for ds in sources]
    if len(set(uids)) != len(uids):
        raise EncodingError("sources must not repeat a SOP Instance UID")


def index_sources(sources: Sequence[Dataset]) -> dict[str, Dataset]:
    """Sources by SOP Instance UID."""
    return {str(ds.SOPInstanceUID): ds for ds in sources}


def laterality_of(ds: Dataset) -> str:
    """Image Laterality, else (series) Laterality, else ""."""
    return str(ds.get("ImageLaterality", ds.get("Laterality", "")) or "")


def frame_group(ds: Dataset, sequence: str, frame: int) -> Dataset | None:
    """The ``sequence`` functional group item of 0-based ``frame`` of an enhanced image.

    The per-frame item when the frame has one, else the shared one, else None (also for a
    classic single-frame image).
    """
    groups = []
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and 0 <= frame < len(per_frame):
        groups.append(per_frame[frame])
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    for group in groups:
        items = group.get(sequence)
        if items:
            return items[0]
    return None


def rescale_of(ds: Dataset, frame: int | None = None) -> tuple[float, float]:
    """(slope, intercept) of the modality LUT; of 0-based ``frame`` for an enhanced image.

    An enhanced image keeps them in the Pixel Value Transformation functional group (per
    frame or shared); a classic image at the top level. Absent values mean (1, 0).
    """
    item = frame_group(ds, "PixelValueTransformationSequence", frame or 0)
    source = item if item is not None and "RescaleSlope" in item else ds
    slope = float(source.get("RescaleSlope", 1) or 1)
    intercept = float(source.get("RescaleIntercept", 0) or 0)
    return slope, intercept


#: What an operator reads when a multi-frame image lacks a functional group (by sequence).
_MISSING_PLANE = {
    "PlanePositionSequence": "multi-frame image without plane positions per frame",
    "PlaneOrientationSequence": "multi-frame image without plane orientation",
    "PixelMeasuresSequence": "multi-frame image without pixel spacing",
}


def _frame_plane(ds: Dataset, frame: int) -> tuple[Vector3, list[float], list[float]]:
    """Position, orientation and spacing of 0-based ``frame`` of an enhanced multi-frame image."""
    found = {}
    for sequence, keyword in (
        ("PlanePositionSequence", "ImagePositionPatient"),
        ("PlaneOrientationSequence", "ImageOrientationPatient"),
        ("PixelMeasuresSequence", "PixelSpacing"),
    ):
        item = frame_group(ds, sequence, frame)
        if item is None or not item.get(keyword):
            raise EncodingError(f"{_MISSING_PLANE[sequence]} (frame {frame + 1})")
        found[keyword] = [float(v) for v in item[keyword].value]
    ipp = found["ImagePositionPatient"]
    if len(ipp) != 3 or len(found["ImageOrientationPatient"]) != 6:
        raise EncodingError(f"multi-frame image with a malformed plane (frame {frame + 1})")
    return (ipp[0], ipp[1], ipp[2]), found["ImageOrientationPatient"], found["PixelSpacing"]


def _is_multi_frame(datasets: Sequence[Dataset]) -> bool:
    first = datasets[0]
    frames = first.get("NumberOfFrames", 1)
    try:
        many = int(frames or 1) > 1
    except (TypeError, ValueError):
        many = False
    return many or (len(datasets) == 1 and "PerFrameFunctionalGroupsSequence" in first)


#: What an operator reads when a single-frame image lacks a plane attribute (by keyword).
_MISSING_SINGLE = {
    "ImagePositionPatient": "image without a patient position",
    "ImageOrientationPatient": "image without a patient orientation",
    "PixelSpacing": "image without pixel spacing",
}


def _single_frame_plane(ds: Dataset) -> tuple[Vector3, list[float], list[float]]:
    for keyword, reason in _MISSING_SINGLE.items():
        if not ds.get(keyword):
            raise EncodingError(f"{reason} (instance {ds.get('InstanceNumber', '?')})")
    ipp = ds.ImagePositionPatient
    return (
        (float(ipp[0]), float(ipp[1]), float(ipp[2])),
        [float(v) for v in ds.ImageOrientationPatient],
        [float(v) for v in ds.PixelSpacing],
    )


#: Share of a series' images the main stack must hold when images of other orientations remain
#: once the localizers are left out (below it, the series is refused as several stacks).
MAIN_STACK_SHARE = 0.8


def _is_localizer(ds: Dataset) -> bool:
    image_type = ds.get("ImageType") or []
    values = [image_type] if isinstance(image_type, str) else list(image_type)
    return any(str(v).strip().upper() == "LOCALIZER" for v in values[2:3])


def main_stack(datasets: Sequence[Dataset]) -> list[Dataset]:
    """The single-frame images of a series that make its volume: all of them, unless some lie
    in another plane.

    Scanners put a scout or localizer in the series of the scan it planned, and archives merge
    series: the images whose Image Type (value 3) is ``LOCALIZER`` are left out, then, if
    several orientations remain, the largest group of one orientation is kept when it holds at
    least :data:`MAIN_STACK_SHARE` of the images. Otherwise the images are returned as they
    are, and :func:`geometry_from_datasets` refuses them as several stacks.
    """
    orientations = [np.asarray(ds.get("ImageOrientationPatient") or [], float) for ds in datasets]
    groups: list[list[int]] = []  # images of one orientation (within 1e-3, as below)
    for n, orientation in enumerate(orientations):
        for group in groups:
            first = orientations[group[0]]
            if first.shape == orientation.shape and np.allclose(first, orientation, atol=1e-3):
                group.append(n)
                break
        else:
            groups.append([n])
    if len(groups) == 1:
        return list(datasets)
    groups = [[n for n in g if not _is_localizer(datasets[n])] for g in groups]
    largest = max(groups, key=len)
    if len(largest) == sum(len(g) for g in groups) or len(largest) >= MAIN_STACK_SHARE * len(
        datasets
    ):
        return [datasets[n] for n in largest] if largest else list(datasets)
    return list(datasets)


def geometry_from_datasets(datasets: Sequence[Dataset]) -> VolumeGeometry:
    """The geometry of a volume built from ``datasets``, slices sorted along the slice normal.

    Parameters
    ----------
    datasets : sequence of pydicom.Dataset
        Single-frame images of one series (any order; images in another plane than the main
        stack, such as localizers, are left out: :func:`main_stack`), or exactly one enhanced
        multi-frame image with plane position/orientation functional groups.

    Returns
    -------
    VolumeGeometry
        Geometry whose slice k is the k-th plane in ascending order along the normal.
    """
    check_sources(datasets)
    first = datasets[0]
    try:
        if _is_multi_frame(datasets):
            if len(datasets) != 1:
                raise EncodingError(
                    f"a series of {len(datasets)} multi-frame images (only one is supported)"
                )
            n = int(first.get("NumberOfFrames", 1) or 1)
            if "PerFrameFunctionalGroupsSequence" not in first:
                raise EncodingError("multi-frame image without plane positions per frame")
            if len(first.PerFrameFunctionalGroupsSequence) != n:
                raise EncodingError(
                    f"multi-frame image declares {n} frames but describes "
                    f"{len(first.PerFrameFunctionalGroupsSequence)}"
                )
            planes = [_frame_plane(first, f) for f in range(n)]
            uids = [str(first.SOPInstanceUID)] * n
            frames: list[int] | None = list(range(1, n + 1))
        else:
            stack = main_stack(datasets)
            first = stack[0]
            planes = [_single_frame_plane(ds) for ds in stack]
            uids = [str(ds.SOPInstanceUID) for ds in stack]
            frames = None
        orientation = planes[0][1]
        if any(not np.allclose(p[1], orientation, atol=1e-3) for p in planes):
            raise EncodingError(
                "images of several orientations (a localizer or several stacks in one series)"
            )
        normal = np.cross(orientation[:3], orientation[3:])
        order = np.argsort([float(np.dot(p[0], normal)) for p in planes], kind="stable")
        return VolumeGeometry(
            sop_instance_uids=tuple(uids[i] for i in order),
            positions=tuple(planes[i][0] for i in order),
            orientation=tuple(orientation),  # type: ignore[arg-type]
            pixel_spacing=(planes[0][2][0], planes[0][2][1]),
            rows=int(first.Rows),
            columns=int(first.Columns),
            frame_of_reference_uid=str(first.FrameOfReferenceUID),
            frame_numbers=tuple(frames[i] for i in order) if frames else None,
        )
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise EncodingError(f"sources lack usable geometry: {_plain(exc)}") from exc


def _plain(exc: Exception) -> str:
    """An operator's words for a missing attribute (not Python's "'FileDataset' object has
    no attribute 'PixelSpacing'"); other messages as they are."""
    missing = re.search(r"has no attribute '(\w+)'", str(exc))
    if missing:
        return f"{missing.group(1)} is missing"
    if isinstance(exc, KeyError):
        return f"{exc.args[0] if exc.args else 'an attribute'} is missing"
    text = str(exc)
    for name, keyword in _KEYWORDS.items():  # VolumeGeometry's parameters, as DICOM names them
        text = text.replace(name, keyword)
    return text


_KEYWORDS = {
    "pixel_spacing": "PixelSpacing",
    "frame_of_reference_uid": "FrameOfReferenceUID",
    "orientation": "ImageOrientationPatient",
    "rows and columns": "Rows and Columns",
    "frame_numbers": "frame numbers",
}


MAX_FRAME_BYTES = 256 * 1024 * 1024
"""Largest decoded frame the summary will draw (guards against decompression bombs)."""


def display_slice(ds: Dataset, frame_number: int | None = None) -> np.ndarray:
    """One frame of ``ds`` windowed to uint8 for display (VOI LUT when present, else min-max).

    Only that frame is decoded; a frame above :data:`MAX_FRAME_BYTES` is refused.
    """
    size = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1))
    if size * int(ds.get("BitsAllocated", 16)) // 8 > MAX_FRAME_BYTES:
        raise EncodingError(f"source frame of {size} samples exceeds {MAX_FRAME_BYTES} bytes")
    multi_frame = int(ds.get("NumberOfFrames", 1)) > 1
    index = (frame_number or 1) - 1 if multi_frame else None
    pixels = pixel_array(ds, index=index)
    if pixels.ndim == 3 and int(ds.get("SamplesPerPixel", 1)) > 1:
        pixels = pixels.mean(axis=2)
    slope, intercept = rescale_of(ds, index)
    values = pixels.astype(np.float64) * slope + intercept
    voi = frame_group(ds, "FrameVOILUTSequence", index or 0)
    window = voi if voi is not None and "WindowCenter" in voi else ds
    center, width = window.get("WindowCenter"), window.get("WindowWidth")
    if center is not None and width is not None:
        c = float(center[0] if isinstance(center, Sequence) else center)
        w = max(float(width[0] if isinstance(width, Sequence) else width), 1.0)
        low, high = c - w / 2, c + w / 2
    else:
        low, high = float(values.min()), float(values.max())
    scaled = (values - low) / max(high - low, 1e-6)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        scaled = 1.0 - scaled
    return (np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)
