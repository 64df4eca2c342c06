"""Synthetic follow-up pairs with known change: the same patient scanned twice.

:func:`chest_ct_pair` makes a prior and a current chest CT of one patient (same PatientID,
name, birth date), ``interval_days`` apart (new study, series and instance UIDs and frame of
reference), with the patient lying slightly differently (a :class:`RigidPose` of a few mm
and degrees) and nodules that grew by known volume factors, one that appeared and one that
resolved. The truth (:class:`NoduleChange`) gives each nodule's volumes and its volume
doubling time ``interval × ln 2 / ln(V_current / V_prior)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from dicomnode.synthetic.ct import CHEST_CENTRE_MM, ChestCT, NoduleSpec, chest_ct, nodule_sites
from dicomnode.synthetic.mr import BrainMR, LesionSpec, brain_mr
from dicomnode.synthetic.pose import RigidPose
from dicomnode.synthetic.truth import Lesion, Nodule

__all__ = [
    "BRAIN_POSE",
    "BrainMRPair",
    "ChangeStatus",
    "LesionChange",
    "brain_mr_pair",
    "ChestCTPair",
    "DEFAULT_POSE",
    "NoduleChange",
    "RigidPose",
    "chest_ct_pair",
    "doubling_time_days",
]

DEFAULT_POSE = RigidPose(
    rotation_deg=(1.5, -1.0, 3.0), translation_mm=(4.0, -3.0, 5.0), centre_mm=CHEST_CENTRE_MM
)
"""The follow-up's pose relative to the prior: 3.0° about z, 1.5° and 1.0° about x and y,
(4, -3, 5) mm."""


class ChangeStatus(StrEnum):
    """What happened to a nodule or lesion between two visits."""

    STABLE = "stable"
    GROWN = "grown"
    NEW = "new"
    RESOLVED = "resolved"


def doubling_time_days(interval_days: float, prior_volume: float, current_volume: float) -> float:
    """Volume doubling time ``interval × ln 2 / ln(V_current / V_prior)`` (days; infinite for no
    change, negative for shrinkage).

    Raises
    ------
    ValueError
        When a volume is not positive.
    """
    if prior_volume <= 0 or current_volume <= 0:
        raise ValueError(f"volumes must be > 0, got {prior_volume} and {current_volume}")
    ratio = math.log(current_volume / prior_volume)
    return math.inf if ratio == 0 else interval_days * math.log(2.0) / ratio


@dataclass(frozen=True)
class NoduleChange:
    """The truth of one nodule across the two visits.

    Attributes
    ----------
    prior, current : Nodule or None
        The nodule in each study's patient coordinates (None where it is absent).
    """

    prior: Nodule | None
    current: Nodule | None

    @property
    def status(self) -> ChangeStatus:
        """New, resolved, grown (volume up by more than 1 %) or stable."""
        if self.prior is None:
            return ChangeStatus.NEW
        if self.current is None:
            return ChangeStatus.RESOLVED
        grown = self.current.diameter_mm > self.prior.diameter_mm * 1.01 ** (1 / 3)
        return ChangeStatus.GROWN if grown else ChangeStatus.STABLE

    @property
    def prior_volume_mm3(self) -> float | None:
        """Volume at the prior visit (mm³), None when absent."""
        return _sphere_mm3(self.prior.diameter_mm) if self.prior is not None else None

    @property
    def current_volume_mm3(self) -> float | None:
        """Volume at the current visit (mm³), None when absent."""
        return _sphere_mm3(self.current.diameter_mm) if self.current is not None else None

    def doubling_time_days(self, interval_days: float) -> float | None:
        """True volume doubling time (days); None for a new or resolved nodule."""
        before, after = self.prior_volume_mm3, self.current_volume_mm3
        if before is None or after is None:
            return None
        return doubling_time_days(interval_days, before, after)


def _sphere_mm3(diameter_mm: float) -> float:
    return math.pi / 6.0 * diameter_mm**3


@dataclass
class ChestCTPair:
    """A prior and a current chest CT of one patient, and what changed.

    Attributes
    ----------
    prior, current : ChestCT
        The two studies (``current.nodules`` in the current's patient coordinates).
    changes : list of NoduleChange
        One per nodule seen in either study.
    interval_days : int
        Days between the StudyDates.
    pose : RigidPose
        Prior patient coordinates -> current patient coordinates.
    """

    prior: ChestCT
    current: ChestCT
    changes: list[NoduleChange]
    interval_days: int
    pose: RigidPose


def chest_ct_pair(
    seed: int,
    *,
    shape: tuple[int, int, int] = (160, 160, 56),
    interval_days: int = 180,
    pose: RigidPose = DEFAULT_POSE,
    grown: tuple[tuple[float, float], ...] = ((8.0, 2.0), (11.0, 1.6), (10.0, 1.0)),
    new_diameter_mm: float | None = 7.0,
    resolved_diameter_mm: float | None = 7.0,
    noise_hu: float = 12.0,
) -> ChestCTPair:
    """A follow-up pair of chest CTs with known nodule growth.

    Parameters
    ----------
    seed : int
        The patient (same seed, same pair).
    shape : tuple of int
        ``(rows, columns, slices)`` of both studies.
    interval_days : int
        Days from the prior to the current study, 1–3650.
    pose : RigidPose
        How the patient lies at the current visit relative to the prior.
    grown : tuple of (prior diameter mm, volume factor)
        Nodules present in both studies: prior diameter and current/prior volume.
    new_diameter_mm, resolved_diameter_mm : float, optional
        Diameter of the nodule that appears in the current study, of the one that is gone;
        None for none.
    noise_hu : float
        Image noise of both studies.

    Returns
    -------
    ChestCTPair
    """
    if not 1 <= interval_days <= 3650:
        raise ValueError(f"interval_days must lie in 1–3650, got {interval_days}")
    for diameter, factor in grown:
        if not 0.1 <= factor <= 10.0:
            raise ValueError(f"volume factors must lie in 0.1–10, got {factor}")
        NoduleSpec((0.0, 0.0, 0.0), diameter * factor ** (1 / 3))  # validates the size
    current_sizes = [d * f ** (1 / 3) for d, f in grown]
    extra = [d for d in (new_diameter_mm, resolved_diameter_mm) if d is not None]
    largest = max([*current_sizes, *(d for d, _ in grown), *extra], default=5.0)
    sites = nodule_sites(seed, shape, len(grown) + len(extra), largest)
    prior_specs = [NoduleSpec(site, d) for site, (d, _) in zip(sites, grown, strict=False)]
    current_specs = [NoduleSpec(site, d) for site, d in zip(sites, current_sizes, strict=False)]
    rest = iter(sites[len(grown) :])
    if new_diameter_mm is not None:
        current_specs.append(NoduleSpec(next(rest), new_diameter_mm))
    if resolved_diameter_mm is not None:
        prior_specs.append(NoduleSpec(next(rest), resolved_diameter_mm))
    prior = chest_ct(seed, shape=shape, nodules=prior_specs, noise_hu=noise_hu)
    current = chest_ct(
        seed,
        shape=shape,
        nodules=current_specs,
        noise_hu=noise_hu,
        pose=pose,
        days_later=interval_days,
    )
    changes = [NoduleChange(prior.nodules[n], current.nodules[n]) for n in range(len(grown))]
    if new_diameter_mm is not None:
        changes.append(NoduleChange(None, current.nodules[len(grown)]))
    if resolved_diameter_mm is not None:
        changes.append(NoduleChange(prior.nodules[len(grown)], None))
    return ChestCTPair(prior, current, changes, interval_days, pose)


BRAIN_POSE = RigidPose(
    rotation_deg=(2.0, -1.0, 3.0), translation_mm=(3.0, -2.0, 4.0), centre_mm=(0.0, 0.0, 40.0)
)
"""The follow-up MR's pose relative to the prior: about 3.7°, (3, -2, 4) mm."""


@dataclass(frozen=True)
class LesionChange:
    """The truth of one brain lesion across two visits (voxel truth of each study's grid).

    Attributes
    ----------
    prior, current : Lesion or None
        The lesion in each study (``label`` indexes that study's label volume).
    status : ChangeStatus
        NEW, GROWN (enlarged) or STABLE.
    """

    prior: Lesion | None
    current: Lesion | None
    status: ChangeStatus


@dataclass
class BrainMRPair:
    """A prior and a current FLAIR of one patient, and what changed.

    Attributes
    ----------
    prior, current : BrainMR
        The two studies.
    changes : list of LesionChange
        One per lesion of either study.
    interval_days : int
        Days between the StudyDates.
    pose : RigidPose
        Prior patient coordinates -> current patient coordinates.
    """

    prior: BrainMR
    current: BrainMR
    changes: list[LesionChange]
    interval_days: int
    pose: RigidPose

    def count(self, status: ChangeStatus) -> int:
        """How many lesions have ``status``."""
        return sum(1 for change in self.changes if change.status is status)


def brain_mr_pair(
    seed: int,
    *,
    shape: tuple[int, int, int] = (128, 128, 48),
    interval_days: int = 365,
    pose: RigidPose = BRAIN_POSE,
    radii_mm: tuple[float, ...] = (4.0, 5.0, 4.5),
    enlarged: int = 1,
    new: int = 2,
    growth: float = 1.35,
    noise: float = 12.0,
) -> BrainMRPair:
    """A follow-up pair of brain FLAIRs with new and enlarged lesions.

    Parameters
    ----------
    seed : int
        The patient.
    shape : tuple of int
        ``(rows, columns, slices)`` of both studies.
    interval_days : int
        Days from the prior to the current study.
    pose : RigidPose
        How the head lies at the current visit relative to the prior.
    radii_mm : tuple of float
        Radii of the prior's lesions; the first ``enlarged`` grow by ``growth`` in radius
        (1.35: volume × 2.5), the rest stay.
    new : int
        Lesions that appear in the current study (radius: the mean of ``radii_mm``).
    noise : float
        Image noise.

    Returns
    -------
    BrainMRPair
    """
    if not 0 <= enlarged <= len(radii_mm):
        raise ValueError(f"enlarged must lie in 0–{len(radii_mm)}, got {enlarged}")
    if not 1.0 < growth <= 3.0:
        raise ValueError(f"growth must lie in (1, 3], got {growth}")
    new_radius = float(sum(radii_mm) / max(len(radii_mm), 1)) if radii_mm else 4.0
    largest = max([*(r * growth for r in radii_mm), new_radius])
    sites = brain_mr(
        seed, shape=shape, n_lesions=len(radii_mm) + new, radius_range_mm=(largest, largest)
    ).lesions
    centres = [lesion.centre_mm for lesion in sites]
    prior_specs = [LesionSpec(c, r) for c, r in zip(centres, radii_mm, strict=False)]
    current_specs = [
        LesionSpec(c, r * growth if n < enlarged else r)
        for n, (c, r) in enumerate(zip(centres, radii_mm, strict=False))
    ]
    current_specs += [LesionSpec(c, new_radius) for c in centres[len(radii_mm) :]]
    prior = brain_mr(seed, shape=shape, lesions=prior_specs, noise=noise)
    current = brain_mr(
        seed,
        shape=shape,
        lesions=current_specs,
        noise=noise,
        pose=pose,
        days_later=interval_days,
    )
    changes = [
        LesionChange(
            prior.lesions[n],
            current.lesions[n],
            ChangeStatus.GROWN if n < enlarged else ChangeStatus.STABLE,
        )
        for n in range(len(radii_mm))
    ]
    changes += [
        LesionChange(None, current.lesions[n], ChangeStatus.NEW)
        for n in range(len(radii_mm), len(current_specs))
    ]
    return BrainMRPair(prior, current, changes, interval_days, pose)
