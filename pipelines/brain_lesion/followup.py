"""Brain lesion follow-up: new, enlarging and resolved lesions and the change of lesion load.

The prior is laid onto the current study by a rigid registration of the two brain masks
(:func:`pipelines.common.registration.register_masks`); the prior's lesion labels are then
resampled onto the current grid (nearest neighbour) and compared lesion by lesion:

* a current lesion that overlaps no prior lesion is **new** (the MAGNIMS definition of a new
  T2 lesion: absent on the prior scan);
* one that overlaps prior lesions is **enlarging** when its volume is at least
  ``1 + ENLARGING_FRACTION`` times theirs (50 %) and larger by at least
  ``ENLARGING_MIN_MM3``. MAGNIMS (Filippi et al. 2019, Wattjes et al. 2021) counts enlarging
  lesions by eye; automated pipelines need a volumetric rule, and +50 % is the one used by
  longitudinal lesion tools (e.g. the "enlarging" class of the MSSEG-2 and of several
  commercial reports): for a 4 mm lesion the volume of partial voxels at 1 × 1 × 3 mm varies by
  ±15–25 % between two scans, so a smaller threshold counts noise, and the absolute floor of
  three voxels of 1 × 1 × 3 mm (9 mm³, rounded to 10) keeps a 2-voxel lesion from "enlarging"
  to 3;
* a prior lesion that no current lesion overlaps has **resolved**;
* the others are stable (or decreasing, at the mirror threshold).

**Paired measurement.** Two independent segmentations of the same lesion differ by far more
than the lesion changed (the demo network under-segments faint lesions by half, and not by the
same half on both visits), so when both FLAIRs are given the change of each lesion is measured
on both visits *with one rule* (:mod:`pipelines.brain_lesion.halfmax`): the lesion's peak is
the mean of the two visits' peaks (the one visit's where only one segmentation has it), and on
each visit the lesion is the voxels above half that peak's height over normal brain, connected
to the lesion as either visit's segmentation placed it.
Longitudinal lesion tools do the same in spirit (a joint or difference analysis of both time
points rather than two cross-sectional masks; e.g. Schmidt et al. 2019, LST longitudinal). A
current lesion that overlaps no prior lesion is still new only when the prior image shows less
than ``ENLARGING_MIN_MM3`` above that threshold where the lesion lies; otherwise the prior's
segmentation had missed it and it is compared like any other. The mirror rule holds for a
prior lesion that no current lesion overlaps: resolved only when the current image shows less
than that where it lay.

Volumes are each study's own voxel counts (not resampled ones); the total lesion volume of both
visits is reported too (from the segmentations).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from dicomnode.results import FindingKind
from dicomnode.results.changes import ChangeStatus, RegionChange
from pipelines.brain_lesion.halfmax import Visit, extent, half_max_level
from pipelines.common.registration import RigidTransform

__all__ = [
    "ENLARGING_FRACTION",
    "ENLARGING_MIN_MM3",
    "Visit",
    "brain_mask_kji",
    "compare_lesions",
    "resample_labels",
]

ENLARGING_FRACTION = 0.5
ENLARGING_MIN_MM3 = 10.0


def resample_labels(
    labels: np.ndarray,
    affine: np.ndarray,
    target_shape: tuple[int, ...],
    target_affine: np.ndarray,
    transform: RigidTransform,
) -> np.ndarray:
    """``labels`` (``[slice, row, column]``, ``affine``) of the moving visit on the fixed visit's
    grid, nearest neighbour; ``transform`` maps moving to fixed patient coordinates."""
    to_input = np.linalg.inv(affine) @ np.linalg.inv(transform.matrix) @ target_affine
    flip = np.eye(4)[[2, 1, 0, 3]]
    matrix = flip @ to_input @ flip
    return ndimage.affine_transform(
        labels, matrix[:3, :3], offset=matrix[:3, 3], output_shape=target_shape, order=0, cval=0
    )


def _paired(
    visits: tuple[Visit, Visit],
    lesion: tuple[np.ndarray, np.ndarray],
    seed: tuple[np.ndarray, np.ndarray],
    affines: tuple[np.ndarray, np.ndarray],
) -> tuple[float, float]:
    """Volumes (mm³) of one lesion on the prior and the current visit, with one threshold.

    ``lesion`` is the lesion as each visit's segmentation has it (either may be empty, not
    both); ``seed`` is where it lies on each grid, that segmentation or the other visit's
    placed onto it (see the module's docstring for the rule).
    """
    level = half_max_level([v.scaled for v in visits], list(lesion))
    if level is None:
        return 0.0, 0.0
    before, after = (
        extent(v.scaled, v.brain, s, level).sum() * _voxel_mm3(a)
        for v, s, a in zip(visits, seed, affines, strict=True)
    )
    return float(before), float(after)


def _voxel_mm3(affine: np.ndarray) -> float:
    return float(abs(np.linalg.det(affine[:3, :3])))


def _centres(
    labels: np.ndarray, affine: np.ndarray, count: int
) -> list[tuple[float, float, float]]:
    kji = ndimage.center_of_mass(labels > 0, labels, range(1, count + 1))
    out = []
    for k, j, i in kji:
        x, y, z = (affine @ np.array([i, j, k, 1.0]))[:3]
        out.append((float(x), float(y), float(z)))
    return out


def _status(before: float, after: float, fraction: float, floor: float) -> ChangeStatus:
    if after >= before * (1.0 + fraction) and after - before >= floor:
        return ChangeStatus.ENLARGING
    if after <= before / (1.0 + fraction) and before - after >= floor:
        return ChangeStatus.DECREASING
    return ChangeStatus.STABLE


def compare_lesions(
    prior_labels: np.ndarray,
    prior_affine: np.ndarray,
    current_labels: np.ndarray,
    current_affine: np.ndarray,
    transform: RigidTransform,
    *,
    tracking_ids: Sequence[str] | None = None,
    visits: tuple[Visit, Visit] | None = None,
    enlarging_fraction: float = ENLARGING_FRACTION,
    enlarging_min_mm3: float = ENLARGING_MIN_MM3,
) -> list[RegionChange]:
    """One change per lesion of either visit (current ones in label order, then resolved).

    Parameters
    ----------
    prior_labels, current_labels : numpy.ndarray
        Integer ``[slice, row, column]`` volumes, ``n`` on lesion ``n`` (0 elsewhere), or
        boolean masks (labelled into connected components here).
    prior_affine, current_affine : numpy.ndarray
        4x4 (column, row, slice) index -> patient of each.
    transform : RigidTransform
        Prior -> current patient coordinates.
    tracking_ids : sequence of str, optional
        Identifier of each current lesion (default ``"lesion n"``).
    visits : tuple of Visit, optional
        ``(prior, current)`` images and brains: the change of each lesion is then a paired
        measurement (module docstring); without them, the label volumes are compared.
    """
    prior = _labelled(prior_labels)
    current = _labelled(current_labels)
    n_prior, n_current = int(prior.max(initial=0)), int(current.max(initial=0))
    prior_mm3 = np.bincount(prior.ravel(), minlength=n_prior + 1) * _voxel_mm3(prior_affine)
    current_mm3 = np.bincount(current.ravel(), minlength=n_current + 1) * _voxel_mm3(current_affine)
    moved = resample_labels(prior, prior_affine, current.shape, current_affine, transform)
    back = (
        resample_labels(
            current,
            current_affine,
            prior.shape,
            prior_affine,
            RigidTransform(np.linalg.inv(transform.matrix)),
        )
        if visits is not None
        else None
    )
    affines = (prior_affine, current_affine)
    prior_centres = _centres(prior, prior_affine, n_prior)
    current_centres = _centres(current, current_affine, n_current)
    seen: set[int] = set()
    out = []
    for n in range(1, n_current + 1):
        overlap = {int(v) for v in np.unique(moved[current == n])} - {0}
        seen |= overlap
        after = float(current_mm3[n])
        before = float(sum(prior_mm3[p] for p in overlap))
        new = not overlap
        if visits is not None and back is not None:
            ours = (np.isin(prior, sorted(overlap)), current == n)
            seeds = (ours[0] | (back == n), ours[1] | np.isin(moved, sorted(overlap)))
            before, after = _paired(visits, ours, seeds, affines)
            new = new and before < enlarging_min_mm3
        out.append(
            RegionChange(
                kind=FindingKind.BRAIN_LESION,
                status=(
                    ChangeStatus.NEW
                    if new
                    else _status(before, after, enlarging_fraction, enlarging_min_mm3)
                ),
                tracking_id=tracking_ids[n - 1] if tracking_ids else f"lesion {n}",
                prior_center=(
                    prior_centres[min(overlap) - 1]
                    if overlap
                    else None
                    if new
                    else _back(transform, current_centres[n - 1])
                ),
                current_center=current_centres[n - 1],
                prior_volume_ml=None if new else before / 1000.0,
                current_volume_ml=after / 1000.0,
            )
        )
    for p in range(1, n_prior + 1):
        if p in seen:
            continue
        before, after = float(prior_mm3[p]), 0.0
        if visits is not None:
            ours = (prior == p, np.zeros(current.shape, bool))
            before, after = _paired(visits, ours, (ours[0], moved == p), affines)
        gone = after < enlarging_min_mm3
        out.append(
            RegionChange(
                kind=FindingKind.BRAIN_LESION,
                status=(
                    ChangeStatus.RESOLVED
                    if gone
                    else _status(before, after, enlarging_fraction, enlarging_min_mm3)
                ),
                tracking_id=f"prior lesion {p}",
                prior_center=prior_centres[p - 1],
                current_center=(None if gone else _forward(transform, prior_centres[p - 1])),
                prior_volume_ml=before / 1000.0,
                current_volume_ml=None if gone else after / 1000.0,
            )
        )
    return out


def _back(
    transform: RigidTransform, point: tuple[float, float, float]
) -> tuple[float, float, float]:
    """``point`` of the current visit in the prior's patient coordinates."""
    x, y, z = (np.linalg.inv(transform.matrix) @ np.array([*point, 1.0]))[:3]
    return float(x), float(y), float(z)


def _forward(
    transform: RigidTransform, point: tuple[float, float, float]
) -> tuple[float, float, float]:
    """``point`` of the prior visit in the current's patient coordinates."""
    x, y, z = transform.apply(np.array(point))
    return float(x), float(y), float(z)


def _labelled(labels: np.ndarray) -> np.ndarray:
    if labels.dtype == np.bool_:
        out, _ = ndimage.label(labels, structure=np.ones((3, 3, 3), bool))
        return np.asarray(out, np.int32)
    return np.asarray(labels, np.int32)


def brain_mask_kji(image: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The skull-stripped brain (:func:`pipelines.brain_lesion.skullstrip.brain_mask`) of an
    axial ``[slice, row, column]`` image, as a ``[slice, row, column]`` mask."""
    from pipelines.brain_lesion.skullstrip import brain_mask

    spacing = np.linalg.norm(affine[:3, :3], axis=0)  # column, row, slice
    xyz = np.transpose(np.asarray(image, np.float32), (2, 1, 0))
    return np.transpose(brain_mask(xyz, tuple(float(s) for s in spacing)).brain, (2, 1, 0))
