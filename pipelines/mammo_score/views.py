"""Mammography views from the header (no torch: the pipeline's ``check`` uses this)."""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from dicomnode.pipeline import InputRefused

__all__ = ["ViewKey", "view_key"]


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
