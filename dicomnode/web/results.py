"""Result instances for the web pages: their kind, their findings as table rows, a PNG preview.

Findings come from the SR (:func:`dicomnode.results.decode.findings_from_sr`), the preview
from the summary image's pixels (Pillow writes the PNG). Pixel data is checked against a
budget before it is decoded.
"""

from __future__ import annotations

import enum
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from dicomnode.results.decode import findings_from_sr
from dicomnode.results.errors import EncodingError
from dicomnode.results.findings import Classification, Findings, RegionFinding

__all__ = ["FindingRow", "PreviewError", "ResultKind", "finding_rows", "png_preview", "result_kind"]

#: Segmentation Storage.
_SEG = "1.2.840.10008.5.1.4.1.1.66.4"
#: Structured reports are 1.2.840.10008.5.1.4.1.1.88.x.
_SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
#: The most decoded pixel bytes a preview may need.
_PREVIEW_BYTES = 64 * 1024 * 1024
#: The preview's longest side in pixels.
_PREVIEW_SIDE = 1024


class ResultKind(str, enum.Enum):
    """What a result instance is, by its SOP Class."""

    SR = "SR"
    SEG = "SEG"
    SUMMARY = "summary"


def result_kind(sop_class_uid: str) -> ResultKind:
    """The kind of a result instance of ``sop_class_uid``."""
    if sop_class_uid == _SEG:
        return ResultKind.SEG
    if sop_class_uid.startswith(_SR_PREFIX):
        return ResultKind.SR
    return ResultKind.SUMMARY


class PreviewError(Exception):
    """A result file cannot be shown (gone, not DICOM, no or too much pixel data)."""


@dataclass(frozen=True)
class FindingRow:
    """One finding of an SR as the findings table shows it."""

    finding: str
    where: str
    size: str
    score: str


def _region_row(region: RegionFinding) -> FindingRow:
    centre = ", ".join(f"{v:.1f}" for v in region.center)
    sizes = []
    if region.diameter_mm is not None:
        sizes.append(f"{region.diameter_mm:.1f} mm")
    if region.volume_ml is not None:
        sizes.append(f"{region.volume_ml:.2f} ml")
    return FindingRow(
        finding=region.kind.value,
        where=f"{region.shape.value} at ({centre}) mm",
        size=", ".join(sizes) or "-",
        score="-" if region.score is None else f"{region.score:.3f}",
    )


def _class_row(item: Classification) -> FindingRow:
    where = item.laterality.value if item.laterality is not None else "-"
    return FindingRow(
        finding=item.kind.value + (f" (density {item.density.value})" if item.density else ""),
        where=where,
        size="-",
        score="-" if item.score is None else f"{item.score:.3f}",
    )


def finding_rows(findings: Findings) -> list[FindingRow]:
    """Table rows for ``findings``: each region and classification, and each kind looked for
    and not found ("none found")."""
    rows = [_region_row(r) for r in findings.regions]
    rows += [_class_row(c) for c in findings.classifications]
    seen = {r.kind for r in findings.regions} | {c.kind for c in findings.classifications}
    seen |= {m.kind for m in findings.masks}
    rows += [FindingRow(k.value, "none found", "-", "-") for k in findings.kinds if k not in seen]
    return rows


def _read(path: Path, *, pixels: bool) -> Dataset:
    try:
        return dcmread(path, stop_before_pixels=not pixels)
    except (OSError, InvalidDicomError, ValueError) as exc:
        raise PreviewError(f"cannot read the result file: {type(exc).__name__}") from exc


def sr_findings(path: Path) -> list[FindingRow]:
    """The findings table of the SR at ``path``.

    Raises
    ------
    PreviewError
        The file cannot be read or holds no report dicomnode made.
    """
    try:
        return finding_rows(findings_from_sr(_read(path, pixels=True)))
    except EncodingError as exc:
        raise PreviewError(str(exc)) from exc


def _decoded_bytes(ds: Dataset) -> int:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 8) or 8)
    return int(ds.Rows) * int(ds.Columns) * frames * samples * max(bits // 8, 1)


def _to_8bit(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    low, high = float(array.min()), float(array.max())
    scaled = (array.astype(np.float64) - low) / ((high - low) or 1.0) * 255.0
    return np.clip(scaled, 0, 255).astype(np.uint8)


def png_preview(path: Path) -> bytes:
    """The first frame of the image at ``path`` as PNG (at most 1024 pixels a side).

    Raises
    ------
    PreviewError
        The file cannot be read, has no pixel data, or more than the preview budget.
    """
    ds = _read(path, pixels=True)
    if "PixelData" not in ds or "Rows" not in ds:
        raise PreviewError("the result has no pixel data")
    if _decoded_bytes(ds) > _PREVIEW_BYTES:
        raise PreviewError("the image is too large to preview")
    try:
        array = ds.pixel_array
    except (ValueError, NotImplementedError, RuntimeError) as exc:
        raise PreviewError(f"cannot decode the pixels: {type(exc).__name__}") from exc
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        array = array[0]
    rgb = int(ds.get("SamplesPerPixel", 1) or 1) == 3
    image = Image.fromarray(_to_8bit(array if rgb or array.ndim == 2 else array[..., 0]))
    image.thumbnail((_PREVIEW_SIDE, _PREVIEW_SIDE))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def is_uid(text: str) -> bool:
    """Whether ``text`` is a valid UID (what a URL may name a result by)."""
    return 0 < len(text) <= 64 and UID(text).is_valid
