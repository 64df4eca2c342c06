"""Reading stored DICOM series for pipelines: header checks, a decode budget, volumes.

Pixel data is never decoded before its declared size has been checked against the configured
budget and against the length of the stored PixelData (PITFALLS: a 7.9 MB RLE file decodes to
503 MB): an image that claims to decode to more than ``max_compression_ratio`` times what is
stored is refused as a decompression bomb. Every refusal is an
:class:`~dicomnode.pipeline.InputRefused` with a one-line reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from dicomnode.pipeline import InputRefused
from dicomnode.results import VolumeGeometry

__all__ = [
    "DEFAULT_DECODE_BUDGET",
    "DEFAULT_MAX_COMPRESSION_RATIO",
    "Volume",
    "check_decode_budget",
    "check_geometry",
    "decode_pixels",
    "declared_pixel_bytes",
    "read_datasets",
    "read_headers",
    "require_modality",
    "stored_pixel_bytes",
    "volume_from_datasets",
]

log = logging.getLogger(__name__)

DEFAULT_DECODE_BUDGET = 2 * 1024**3
"""Largest decoded pixel data (bytes) of one series unless ``decode_budget_bytes`` says so."""

DEFAULT_MAX_COMPRESSION_RATIO = 32.0
"""Largest declared-decoded / stored size of one image unless ``max_compression_ratio`` says so.

Lossless codecs reach about 2-6:1 on clinical images and lossy ones at diagnostic quality
about 10-20:1; RLE cannot exceed 64:1 and a decompression bomb sits at or near its codec's
maximum.
"""


def read_headers(files: Sequence[Path]) -> list[Dataset]:
    """Headers of ``files`` without pixel data (cheap: nothing is decoded).

    Raises
    ------
    InputRefused
        A file is not DICOM or cannot be read.
    """
    out: list[Dataset] = []
    for path in files:
        try:
            with open(path, "rb") as fp:
                ds = dcmread(fp, stop_before_pixels=True)
                # pydicom stops at (and rewinds to) the pixel data element, else reads to the end
                tail = os.fstat(fp.fileno()).st_size - fp.tell()
        except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
            raise InputRefused(f"unreadable DICOM file {Path(path).name}: {exc}") from exc
        ds.dicomnode_pixel_tail = tail
        out.append(ds)
    return out


def read_datasets(files: Sequence[Path]) -> list[Dataset]:
    """Full datasets of ``files`` (pixel data read as bytes, not decoded)."""
    out: list[Dataset] = []
    for path in files:
        try:
            ds = dcmread(path)
        except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
            raise InputRefused(f"unreadable DICOM file {Path(path).name}: {exc}") from exc
        if "PixelData" not in ds:
            ds.dicomnode_pixel_tail = 0  # read to the end: there is none
        out.append(ds)
    return out


def require_modality(headers: Sequence[Dataset], modality: str) -> None:
    """Refuse unless every header's Modality is ``modality``."""
    found = sorted({str(ds.get("Modality", "")) or "none" for ds in headers})
    if found != [modality]:
        raise InputRefused(f"wrong modality: expected {modality}, got {', '.join(found)}")


def declared_pixel_bytes(ds: Dataset) -> int:
    """Rows x Columns x Frames x Samples x BitsAllocated / 8 as declared by the header."""
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError) as exc:
        raise InputRefused(
            f"undecodable pixel data: image pixel module incomplete ({exc})"
        ) from exc
    if min(rows, columns, frames, samples, bits) < 1:
        raise InputRefused(
            f"undecodable pixel data: declared size {rows}x{columns}x{frames}x{samples}x{bits}"
        )
    return rows * columns * frames * samples * bits // 8


def stored_pixel_bytes(ds: Dataset) -> int | None:
    """Length of the stored PixelData, or an upper bound of it, without decoding anything.

    The value's length when it was read; else the bytes from the pixel data element to the end
    of the file (headers read by :func:`read_headers`: 0 when the file has no pixel data), else
    the size of the file the header came from; None when none is known.
    """
    if "PixelData" in ds:
        return len(ds.PixelData or b"")
    tail = getattr(ds, "dicomnode_pixel_tail", None)
    if isinstance(tail, int):
        return tail
    filename = getattr(ds, "filename", None)
    if isinstance(filename, str | os.PathLike):
        try:
            return os.path.getsize(filename)
        except OSError:
            return None
    return None


def check_decode_budget(
    datasets: Sequence[Dataset],
    budget_bytes: int,
    *,
    max_ratio: float = DEFAULT_MAX_COMPRESSION_RATIO,
) -> int:
    """Refuse a series that would decode to too much; reads headers and lengths only.

    Refused when the series would decode to more than ``budget_bytes``, or when one image
    declares more than ``max_ratio`` times the bytes stored for it (a decompression bomb:
    small on disk and on the wire, hundreds of MB once decoded).

    Returns the declared decoded size of the whole series in bytes.
    """
    declared = [declared_pixel_bytes(ds) for ds in datasets]
    total = sum(declared)
    if total > budget_bytes:
        first = datasets[0]
        raise InputRefused(
            f"decoded size {total} bytes exceeds the budget of {budget_bytes} bytes "
            f"({int(first.Rows)}x{int(first.Columns)} x {len(datasets)} image(s), "
            f"{int(first.BitsAllocated)} bits)"
        )
    for ds, size in zip(datasets, declared, strict=True):
        stored = stored_pixel_bytes(ds)
        if stored == 0:
            raise InputRefused(_no_pixel_data(datasets))
        if stored is not None and size > max_ratio * max(stored, 1):
            raise InputRefused(
                f"decoded size {size} bytes is more than {max_ratio:g} times the "
                f"{stored} bytes stored ({int(ds.Rows)}x{int(ds.Columns)}, "
                f"{int(ds.get('NumberOfFrames', 1) or 1)} frame(s)): a decompression bomb?"
            )
    return total


def _no_pixel_data(datasets: Sequence[Dataset]) -> str:
    """The refusal of a series where some image holds no pixels."""
    empty = sum(1 for ds in datasets if stored_pixel_bytes(ds) == 0)
    return f"no pixel data: {empty} of {len(datasets)} image(s) hold no pixels"


def _check_stored_length(ds: Dataset) -> None:
    """Refuse missing or truncated PixelData before decoding."""
    if "PixelData" not in ds or not ds.PixelData:
        raise InputRefused(_no_pixel_data([ds]))
    value = ds.PixelData
    expected = declared_pixel_bytes(ds)
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        if not value or len(value) < 16:
            raise InputRefused("undecodable pixel data: empty encapsulated PixelData")
        return
    if len(value) < expected:
        raise InputRefused(
            f"undecodable pixel data: PixelData holds {len(value)} bytes, "
            f"the header declares {expected}"
        )


def decode_pixels(ds: Dataset) -> np.ndarray:
    """Decoded pixels of ``ds`` (after the length check); InputRefused when decoding fails."""
    _check_stored_length(ds)
    try:
        return np.asarray(ds.pixel_array)
    except Exception as exc:  # pydicom raises many types for bad data; each becomes a refusal
        # one line: pydicom lists each missing decoder plugin on a line of its own
        reason = " ".join(str(exc).split())
        raise InputRefused(f"undecodable pixel data: {type(exc).__name__}: {reason}") from exc


@dataclass(frozen=True)
class Volume:
    """A 3D image in modality units with its geometry.

    Attributes
    ----------
    array : numpy.ndarray
        float32, indexed ``[slice, row, column]`` like ``geometry``.
    geometry : VolumeGeometry
        Where the voxels lie (slices sorted along the normal).
    slice_spacing : float
        Distance between adjacent slices in mm.
    """

    array: np.ndarray
    geometry: VolumeGeometry
    slice_spacing: float

    def sop_instance_at(self, centre_mm: Sequence[float] | np.ndarray) -> str:
        """SOP Instance UID of the slice nearest the patient point ``centre_mm``."""
        g = self.geometry
        offsets = (np.asarray(g.positions) - np.asarray(centre_mm, float)) @ g.normal
        return g.sop_instance_uids[int(np.argmin(np.abs(offsets)))]

    def affine(self) -> np.ndarray:
        """4x4 matrix from (column, row, slice) index to patient (LPS, mm).

        The slice axis is the mean step between the slices' positions, which is the slice
        normal times the spacing unless the gantry was tilted: then the planes are tilted and
        the positions step along the table, and slice k maps to its own position all the same.
        """
        g = self.geometry
        matrix = np.eye(4)
        matrix[:3, 0] = np.asarray(g.orientation[:3]) * g.pixel_spacing[1]
        matrix[:3, 1] = np.asarray(g.orientation[3:]) * g.pixel_spacing[0]
        positions = np.asarray(g.positions, float)
        if len(positions) > 1:
            matrix[:3, 2] = (positions[-1] - positions[0]) / (len(positions) - 1)
        else:
            matrix[:3, 2] = g.normal * self.slice_spacing
        matrix[:3, 3] = positions[0]
        return matrix


def check_geometry(headers: Sequence[Dataset], *, spacing_tolerance: float = 0.2) -> VolumeGeometry:
    """Refuse a series whose planes cannot make a volume; reads headers only.

    Single-frame series and one enhanced multi-frame image (per-frame functional groups) alike;
    the reason is one line in an operator's words (``multi-frame image without plane positions
    per frame``, ``irregular slice spacing ...``).
    """
    from dicomnode.results import EncodingError, geometry_from_datasets

    try:
        geometry = geometry_from_datasets(list(headers))
    except EncodingError as exc:
        detail = exc.message.removeprefix("sources lack usable geometry: ")
        raise InputRefused(f"no usable image geometry: {detail}") from exc
    _slice_spacing(geometry, spacing_tolerance)
    return geometry


def _slice_spacing(geometry: VolumeGeometry, tolerance: float) -> float:
    if len(geometry.positions) < 2:
        return 1.0
    along = np.asarray(geometry.positions) @ geometry.normal
    steps = np.diff(along)
    spacing = float(np.median(steps))
    if spacing <= 1e-3:
        raise InputRefused("slices share one position (duplicate or overlapping slices)")
    if float(np.max(np.abs(steps - spacing))) > tolerance * spacing:
        raise InputRefused(
            f"irregular slice spacing: steps from {steps.min():.3g} to {steps.max():.3g} mm "
            "(missing slices?)"
        )
    return spacing


def _rescale(ds: Dataset, pixels: np.ndarray, frame: int | None = None) -> np.ndarray:
    """Modality units; an enhanced image's rescale is read from its functional groups."""
    from dicomnode.results.sources import rescale_of

    slope, intercept = rescale_of(ds, frame)
    return pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def volume_from_datasets(datasets: Sequence[Dataset], *, spacing_tolerance: float = 0.2) -> Volume:
    """Assemble a volume from one series' datasets (single-frame, any order, or multi-frame).

    Slice order and geometry come from :func:`dicomnode.results.geometry_from_datasets`.
    Call :func:`check_decode_budget` first.
    """
    geometry = check_geometry(datasets, spacing_tolerance=spacing_tolerance)
    spacing = _slice_spacing(geometry, spacing_tolerance)
    left_out = len(datasets) - len(set(geometry.sop_instance_uids))
    if left_out > 0:  # said here, not in check_geometry: a pipeline checks headers, then decodes
        log.info("volume: %d image(s) outside the main stack left out (localizers)", left_out)
    array = np.empty(geometry.shape, np.float32)
    if geometry.frame_numbers is not None:
        frames = decode_pixels(datasets[0])
        expected = (int(datasets[0].NumberOfFrames), geometry.rows, geometry.columns)
        if frames.shape != expected:
            raise InputRefused(
                f"multi-frame image is not grey-scale frames of {geometry.rows}x"
                f"{geometry.columns}: decoded shape {frames.shape}"
            )
        for k, number in enumerate(geometry.frame_numbers):
            array[k] = _rescale(datasets[0], frames[number - 1], number - 1)
    else:
        by_uid = {str(ds.SOPInstanceUID): ds for ds in datasets}
        for k, uid in enumerate(geometry.sop_instance_uids):
            ds = by_uid[uid]
            pixels = decode_pixels(ds)
            if pixels.shape != (geometry.rows, geometry.columns):
                raise InputRefused(
                    f"images differ in size or are not single grey-scale frames: {pixels.shape}"
                )
            array[k] = _rescale(ds, pixels)
    return Volume(array=array, geometry=geometry, slice_spacing=spacing)
