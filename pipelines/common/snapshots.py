"""Current beside prior: the image pairs that the summary shows for the largest changes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dicomnode.results import FindingKind
from dicomnode.results.changes import ChangeSnapshot, ChangeStatus, RegionChange

__all__ = ["caption", "snapshot", "snapshots"]

_SNAPSHOT_MM = 48.0


def snapshot(hu: np.ndarray, affine: np.ndarray, centre_mm: Sequence[float]) -> np.ndarray:
    """The slice through ``centre_mm``, cropped to 48 mm around it (image units)."""
    inverse = np.linalg.inv(affine)
    i, j, k = (inverse @ np.append(np.asarray(centre_mm, float), 1.0))[:3]
    k = int(np.clip(round(k), 0, hu.shape[0] - 1))
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    half_rows = int(round(_SNAPSHOT_MM / 2 / spacing[1]))
    half_cols = int(round(_SNAPSHOT_MM / 2 / spacing[0]))
    row, col = int(round(j)), int(round(i))
    out = np.full((2 * half_rows + 1, 2 * half_cols + 1), -1000.0, np.float32)
    r0, r1 = max(row - half_rows, 0), min(row + half_rows + 1, hu.shape[1])
    c0, c1 = max(col - half_cols, 0), min(col + half_cols + 1, hu.shape[2])
    if r0 < r1 and c0 < c1:
        out[
            r0 - (row - half_rows) : r1 - (row - half_rows),
            c0 - (col - half_cols) : c1 - (col - half_cols),
        ] = hu[k, r0:r1, c0:c1]
    return out


def snapshots(
    changes: Sequence[RegionChange],
    interval: int | None,
    prior: tuple[np.ndarray, np.ndarray] | None,
    current: tuple[np.ndarray, np.ndarray],
    limit: int = 3,
) -> tuple[ChangeSnapshot, ...]:
    """Current beside prior for the ``limit`` largest changes (new and resolved first)."""

    def rank(change: RegionChange) -> float:
        if change.status in (ChangeStatus.NEW, ChangeStatus.RESOLVED):
            return 1e9 + (change.current_volume_ml or change.prior_volume_ml or 0.0)
        return abs(change.volume_change_percent or 0.0)

    out = []
    for change in sorted(changes, key=rank, reverse=True)[:limit]:
        before = (
            snapshot(*prior, change.prior_center)
            if prior is not None and change.prior_center is not None
            else None
        )
        after = snapshot(*current, change.current_center) if change.current_center else None
        out.append(ChangeSnapshot(caption(change, interval), before, after))
    return tuple(out)


def caption(change: RegionChange, interval: int | None) -> str:
    """``"nodule 2: enlarging +85 %, VDT 190 d"`` and the like."""
    parts = [f"{change.tracking_id}: {change.status.value}"]
    percent = change.volume_change_percent
    if percent is not None:
        parts.append(f"{percent:+.0f} %")
    vdt = change.doubling_time_days(interval)
    if vdt is not None and change.kind is FindingKind.LUNG_NODULE:
        parts.append(f"VDT {vdt:.0f} d")
    return " ".join(parts[:2]) + (", " + ", ".join(parts[2:]) if parts[2:] else "")
