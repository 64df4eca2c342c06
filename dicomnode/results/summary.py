"""Secondary-capture summary: key slices with the findings drawn on them, plus a short text.

For PACS viewers that show neither SEG nor SR. Drawn with Pillow; every image carries
"RESEARCH USE ONLY" in its pixels and in ImageComments.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import highdicom as hd
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset

from dicomnode.results.changes import ChangeSnapshot, ChangeStatus, Comparison
from dicomnode.results.codes import KIND_CODES
from dicomnode.results.common import DEMO_NOTE, MANUFACTURER, RESEARCH_LABEL, EncodingContext
from dicomnode.results.errors import EncodingError
from dicomnode.results.findings import Findings, RegionFinding, RegionShape, VolumeGeometry
from dicomnode.results.seg import related_series
from dicomnode.results.sources import (
    display_slice,
    geometry_from_datasets,
    index_sources,
    laterality_of,
)

__all__ = ["encode_summary", "render_summary", "summary_lines"]

logger = logging.getLogger(__name__)
_Font = ImageFont.ImageFont | ImageFont.FreeTypeFont

PANEL = 256
TILE = 128
"""Side of each image of a prior/current pair."""
MAX_PANELS = 4
_RED, _YELLOW, _WHITE = (255, 40, 40), (255, 220, 0), (255, 255, 255)


@dataclass
class _Panel:
    """One key image: source instance/frame, overlays in source pixel coordinates."""

    source: Dataset
    frame: int | None
    caption: str
    mask: np.ndarray | None = None
    marks: list[tuple[float, float, float, float, str]] = field(default_factory=list)
    """(row, column, radius in rows, radius in columns, label)."""


def summary_lines(findings: Findings, ctx: EncodingContext) -> list[str]:
    """The text block: label, algorithm, one line per finding (or "nothing found")."""
    alg = ctx.algorithm
    lines = [f"{RESEARCH_LABEL} - not for diagnostic use", f"{alg.name} {alg.version} (dicomnode)"]
    if alg.demo_weights:
        lines.insert(1, DEMO_NOTE)
    if alg.weights or alg.model_sha256:
        sha = f" sha256:{alg.model_sha256[:12]}" if alg.model_sha256 else ""
        lines.append(f"weights: {alg.weights or 'unnamed'}{sha}")
    for n, r in enumerate(findings.regions, start=1):
        parts = [f"{n}. {KIND_CODES[r.kind].title}"]
        if r.diameter_mm is not None:
            parts.append(f"{r.diameter_mm:.1f} mm")
        if r.volume_ml is not None:
            parts.append(f"{r.volume_ml:.2f} mL")
        if r.score is not None:
            parts.append(f"score {r.score:.2f}")
        lines.append(", ".join(parts))
    for m in findings.masks:
        if not m.is_empty:
            title = KIND_CODES[m.kind].title
            lines.append(f"{title} burden (all): {m.volume_ml:.2f} mL, {int(m.array.sum())} voxels")
    for c in findings.classifications:
        side = {"L": "Left", "R": "Right"}.get(c.laterality.value if c.laterality else "", "All")
        parts = [f"{side} {KIND_CODES[c.kind].anatomy.meaning.lower()}"]
        if c.score is not None:
            parts.append(f"suspicion {c.score:.2f}")
        if c.density is not None:
            parts.append(f"density {c.density.value}")
        if c.probabilities:
            parts.append(" ".join(f"{p.label}:{p.probability:.2f}" for p in c.probabilities))
        lines.append(", ".join(parts))
    if findings.is_empty:
        titles = ", ".join(KIND_CODES[k].title.lower() for k in findings.kinds)
        lines.append(f"No {titles} found.")
    if findings.comparison is not None:
        lines.extend(_comparison_lines(findings.comparison))
    return lines


def _comparison_lines(comparison: Comparison) -> list[str]:
    """What changed since the prior (counts, totals), or why there was no prior."""
    if not comparison.has_prior:
        return [f"No prior compared: {comparison.note or 'none available'}"[:100]]
    days = f", {comparison.interval_days} days" if comparison.interval_days is not None else ""
    counts = [f"{comparison.count(s)} {s.value}" for s in ChangeStatus if comparison.count(s)]
    lines = [
        f"Prior {comparison.prior_study_date or 'of unknown date'}{days}: "
        + (", ".join(counts) or "nothing to compare")
    ]
    before, after = comparison.total_prior_ml, comparison.total_current_ml
    if before is not None and after is not None:
        lines.append(f"Total volume {before:.2f} mL -> {after:.2f} mL")
    return lines


def _radius_mm(region: RegionFinding, geometry: VolumeGeometry) -> tuple[float, float]:
    """In-plane half-extent (along columns, along rows) of a region, in mm."""
    if region.shape is RegionShape.POINT:
        return (0.0, 0.0)
    row_dir, col_dir = np.asarray(geometry.orientation[:3]), np.asarray(geometry.orientation[3:])
    axes = np.asarray(region.axes)
    return (float(np.abs(axes @ row_dir).max()), float(np.abs(axes @ col_dir).max()))


def _volume_panels(findings: Findings, sources: Sequence[Dataset]) -> list[_Panel]:
    masks = [m for m in findings.masks if not m.is_empty]
    geometry = masks[0].geometry if masks else geometry_from_datasets(sources)
    by_uid = index_sources(sources)
    chosen: dict[int, _Panel] = {}

    def panel(k: int) -> _Panel:
        if k not in chosen:
            uid = geometry.sop_instance_uids[k]
            frame = geometry.frame_numbers[k] if geometry.frame_numbers else None
            chosen[k] = _Panel(by_uid[uid], frame, f"slice {k + 1}/{geometry.shape[0]}")
        return chosen[k]

    ranked = sorted(enumerate(findings.regions, 1), key=lambda t: -(t[1].score or 0.0))
    for n, region in ranked:
        k, row, col = geometry.patient_to_index(region.center)
        if k not in chosen and len(chosen) >= MAX_PANELS:
            continue
        rx, ry = _radius_mm(region, geometry)
        r_rows, r_cols = ry / geometry.pixel_spacing[0], rx / geometry.pixel_spacing[1]
        panel(k).marks.append((row, col, r_rows, r_cols, str(n)))
    for mask in masks:
        counts = mask.array.reshape(mask.array.shape[0], -1).sum(axis=1)
        k = int(np.argmax(counts))
        if len(chosen) < MAX_PANELS:
            panel(k)
    if not chosen:
        panel(geometry.shape[0] // 2)
    for k, p in chosen.items():  # every mask's contour on every key slice it cuts
        for mask in (m for m in masks if m.geometry == geometry):
            p.mask = mask.array[k] if p.mask is None else (p.mask | mask.array[k])
    return [chosen[k] for k in sorted(chosen)]


def _image_panels(sources: Sequence[Dataset]) -> list[_Panel]:
    """Planar images (e.g. the 4 mammography views), right before left, CC before MLO."""

    def key(ds: Dataset) -> tuple[str, str]:
        side = laterality_of(ds)
        return (str(ds.get("ViewPosition", "")), "0" if side == "R" else side)

    ordered = sorted(sources, key=key)[:MAX_PANELS]
    return [
        _Panel(
            ds,
            None,
            " ".join(
                str(v) for v in (ds.get("ImageLaterality", ""), ds.get("ViewPosition", "")) if v
            ),
        )
        for ds in ordered
    ]


def _spacing(ds: Dataset) -> tuple[float, float]:
    """Pixel spacing for drawing: square pixels unless the header gives two positive values."""
    try:
        spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing") or ()
        rows, columns = (float(v) for v in spacing)
    except (TypeError, ValueError):
        return 1.0, 1.0
    return (rows, columns) if rows > 0 and columns > 0 else (1.0, 1.0)


def _render_panel(p: _Panel, font: _Font) -> Image.Image:
    gray = display_slice(p.source, p.frame)
    height_mm, width_mm = (n * d for n, d in zip(gray.shape[:2], _spacing(p.source), strict=True))
    scale = PANEL / max(height_mm, width_mm)
    size = (max(1, round(width_mm * scale)), max(1, round(height_mm * scale)))
    sy, sx = size[1] / gray.shape[0], size[0] / gray.shape[1]
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    if p.mask is not None:
        m = p.mask
        inner = m.copy()
        inner[1:, :] &= m[:-1, :]
        inner[:-1, :] &= m[1:, :]
        inner[:, 1:] &= m[:, :-1]
        inner[:, :-1] &= m[:, 1:]
        rgb[m & ~inner] = _RED
    image = Image.fromarray(rgb, "RGB").resize(size, Image.Resampling.NEAREST)
    canvas = Image.new("RGB", (PANEL, PANEL))
    canvas.paste(image, ((PANEL - size[0]) // 2, (PANEL - size[1]) // 2))
    draw = ImageDraw.Draw(canvas)
    ox, oy = (PANEL - size[0]) // 2, (PANEL - size[1]) // 2
    for row, col, r_rows, r_cols, label in p.marks:
        x, y = ox + (col + 0.5) * sx, oy + (row + 0.5) * sy
        rx, ry = max(r_cols * sx, 5.0), max(r_rows * sy, 5.0)
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), outline=_YELLOW, width=2)
        draw.text((x + rx + 2, y - ry - 2), label, fill=_YELLOW, font=font)
    draw.text((4, PANEL - 18), p.caption, fill=_WHITE, font=font)
    return canvas


def _choose_panels(findings: Findings, sources: Sequence[Dataset]) -> list[_Panel]:
    """Key slices of the volume for localised or no findings; the images themselves otherwise."""
    localised = bool(findings.regions or any(not m.is_empty for m in findings.masks))
    if localised or not findings.classifications:
        try:
            return _volume_panels(findings, sources)
        except EncodingError as exc:  # planar images (e.g. MG): show them as they are
            logger.info("summary shows the source images, no key slices: %s", exc)
    return _image_panels(sources)


def render_summary(
    findings: Findings, sources: Sequence[Dataset], ctx: EncodingContext
) -> np.ndarray:
    """The summary picture as an RGB uint8 array (rows, columns, 3)."""
    panels = _choose_panels(findings, sources)
    font = ImageFont.load_default(size=14)
    lines = summary_lines(findings, ctx)
    text_height = 8 + 18 * len(lines)
    shots = findings.comparison.snapshots if findings.comparison is not None else ()
    pairs = render_changes(shots, font) if shots else None
    width = max(PANEL * len(panels), 2 * PANEL, pairs.width if pairs is not None else 0)
    top = PANEL + (pairs.height if pairs is not None else 0)
    canvas = Image.new("RGB", (width, top + text_height))
    for i, p in enumerate(panels):
        canvas.paste(_render_panel(p, font), (i * PANEL, 0))
    if pairs is not None:
        canvas.paste(pairs, (0, PANEL))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((6, top + 4 + 18 * i), line, fill=_YELLOW if i == 0 else _WHITE, font=font)
    return np.asarray(canvas, dtype=np.uint8)


def _tile(
    image: np.ndarray | None, window: tuple[float, float], label: str, font: _Font
) -> Image.Image:
    """One half of a pair: the image windowed, scaled to ``TILE``, labelled; black if absent."""
    tile = Image.new("RGB", (TILE, TILE))
    if image is not None:
        low, high = window
        gray = np.clip((image - low) / max(high - low, 1e-6) * 255.0, 0, 255).astype(np.uint8)
        tile.paste(Image.fromarray(gray, "L").convert("RGB").resize((TILE, TILE)), (0, 0))
    else:
        label = f"{label}: absent"
    ImageDraw.Draw(tile).text((4, 2), label, fill=_YELLOW, font=font)
    return tile


def render_changes(shots: Sequence[ChangeSnapshot], font: _Font) -> Image.Image:
    """Prior beside current for each snapshot (same window for both), caption below."""
    row = Image.new("RGB", (2 * TILE * len(shots), TILE + 20))
    draw = ImageDraw.Draw(row)
    for n, shot in enumerate(shots):
        both = [a for a in (shot.prior, shot.current) if a is not None]
        values = np.concatenate([a.ravel() for a in both])
        window = (float(np.percentile(values, 1)), float(np.percentile(values, 99.5)))
        row.paste(_tile(shot.prior, window, "prior", font), (2 * TILE * n, 0))
        row.paste(_tile(shot.current, window, "current", font), (2 * TILE * n + TILE, 0))
        draw.text((2 * TILE * n + 4, TILE + 2), shot.caption[:40], fill=_WHITE, font=font)
    return row


def _set_body_part(sc: Dataset, sources: Sequence[Dataset], findings: Findings) -> None:
    """Body Part Examined and Laterality (Type 2C) from the sources, else from the findings.

    Laterality is the sources' side, or empty (unknown) when the montage shows both sides or
    the body part is not known.
    """
    parts = {str(ds.get("BodyPartExamined", "") or "") for ds in sources} - {""}
    if not parts:
        parts = {KIND_CODES[kind].body_part for kind in findings.kinds}
    if len(parts) == 1:
        sc.BodyPartExamined = parts.pop()
    sides = {laterality_of(ds) for ds in sources}
    if sides == {"L"} or sides == {"R"}:
        sc.Laterality = sides.pop()
    elif sides - {""} or "BodyPartExamined" not in sc:
        sc.Laterality = None


def encode_summary(findings: Findings, sources: Sequence[Dataset], ctx: EncodingContext) -> Dataset:
    """A Secondary Capture image summarising ``findings`` on key images of ``sources``.

    Parameters
    ----------
    findings : Findings
        What to draw and list.
    sources : sequence of pydicom.Dataset
        The source series, with pixel data.
    ctx : EncodingContext
        Algorithm, UIDs, series number, predecessor.

    Returns
    -------
    pydicom.Dataset
        An RGB Secondary Capture Image in the sources' study.
    """
    try:
        pixels = render_summary(findings, sources, ctx)
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=sources[0],
            pixel_array=pixels,
            photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
            bits_allocated=8,
            coordinate_system=hd.CoordinateSystemNames.PATIENT,
            series_instance_uid=ctx.uid("summary", "series"),
            series_number=ctx.series_number + 2,
            sop_instance_uid=ctx.uid("summary", "instance"),
            instance_number=1,
            manufacturer=MANUFACTURER,
            patient_orientation=("L", "P"),
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise EncodingError(f"cannot render the summary: {exc}", output="summary") from exc
    sc.PatientOrientation = []  # a montage has no single orientation (Type 2: empty)
    _set_body_part(sc, sources, findings)
    sc.SeriesDescription = ctx.series_description("summary")
    sc.ImageComments = f"{RESEARCH_LABEL}. Findings of {ctx.algorithm.name} {ctx.algorithm.version}"
    if ctx.algorithm.demo_weights:
        sc.ImageComments += f". {DEMO_NOTE}"
    sc.DerivationDescription = "Key images with findings drawn by dicomnode"
    sc.BurnedInAnnotation = "NO"  # the text names findings, not the patient
    sc.ManufacturerModelName = MANUFACTURER
    sc.SoftwareVersions = ctx.software_version
    related = related_series(ctx, str(sc.SOPClassUID))
    if related:
        sc.RelatedSeriesSequence = related
    return sc
