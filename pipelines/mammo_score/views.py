"""Mammography views from the header (no torch: the pipeline's ``check`` uses this)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from dicomnode.pipeline import InputRefused

__all__ = ["ViewKey", "ViewSelection", "select_views", "view_key"]

#: Digital Mammography X-Ray Image Storage - For Processing.
FOR_PROCESSING_CLASS = "1.2.840.10008.5.1.4.1.1.1.2.1"


@dataclass(frozen=True)
class ViewKey:
    """Laterality (``L``/``R``) and projection (``CC``/``MLO``) of one image."""

    laterality: str
    projection: str

    @property
    def name(self) -> str:
        """E.g. ``LMLO``."""
        return f"{self.laterality}{self.projection}"


def view_key(ds: Dataset) -> ViewKey:
    """Laterality and projection from the header (ImageLaterality/Laterality, ViewPosition)."""
    side = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "")).upper()
    if side not in ("L", "R"):
        raise InputRefused(f"image without laterality (ImageLaterality is {side or 'empty'!r})")
    projection = str(ds.get("ViewPosition", "")).upper()
    if not projection and "ViewCodeSequence" in ds and len(ds.ViewCodeSequence):
        meaning = str(ds.ViewCodeSequence[0].get("CodeMeaning", "")).lower()
        projection = "MLO" if "oblique" in meaning else "CC" if "cranio" in meaning else ""
    if projection not in ("CC", "MLO"):
        raise InputRefused(f"unsupported view {projection or 'none'!r} (CC or MLO expected)")
    return ViewKey(side, projection)


@dataclass(frozen=True)
class ViewSelection:
    """The images of a study the model reads, and what was left out and why.

    Attributes
    ----------
    kept : tuple of int
        Indices (into the headers given) of the For Presentation CC and MLO images.
    left_out : collections.Counter
        Reason -> number of images (``FOR PROCESSING``, ``multi-frame (tomosynthesis)``,
        ``spot or magnification view``, the view or laterality refusal of :func:`view_key`).
    """

    kept: tuple[int, ...]
    left_out: Counter[str] = field(default_factory=Counter)

    def describe_left_out(self) -> str:
        """E.g. ``left out: 4 FOR PROCESSING, 2 multi-frame (tomosynthesis)``; "" when none."""
        if not self.left_out:
            return ""
        return "left out: " + ", ".join(f"{n} {why}" for why, n in sorted(self.left_out.items()))


def _left_out_reason(ds: Dataset) -> str:
    """Why the model does not read ``ds`` ("" when it does)."""
    if (
        "PROCESSING" in str(ds.get("PresentationIntentType", "")).upper()
        or str(ds.get("SOPClassUID", "")) == FOR_PROCESSING_CLASS
    ):
        return "FOR PROCESSING"
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        frames = 1
    if frames > 1:
        return "multi-frame (tomosynthesis)"
    for modifier in ds.get("ViewModifierCodeSequence", None) or []:
        meaning = str(modifier.get("CodeMeaning", "")).lower()
        if "spot" in meaning or "magnif" in meaning:
            return "spot or magnification view"
    try:
        view_key(ds)
    except InputRefused as refused:
        return refused.reason
    return ""


def select_views(headers: Sequence[Dataset]) -> ViewSelection:
    """The For Presentation, single-frame CC and MLO images of a study.

    A screening study from a real modality often holds more than the four views: the raw FOR
    PROCESSING images beside the processed ones, tomosynthesis (multi-frame), spot compression
    and magnification views, extra projections (ML, XCCL). The model reads the CC and MLO
    views only; the rest is left out (counted per reason), not a reason to refuse the study.
    """
    kept: list[int] = []
    left_out: Counter[str] = Counter()
    for index, ds in enumerate(headers):
        reason = _left_out_reason(ds)
        if reason:
            left_out[reason] += 1
        else:
            kept.append(index)
    return ViewSelection(tuple(kept), left_out)
