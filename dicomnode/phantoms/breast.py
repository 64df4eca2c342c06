"""Mammography phantoms: four For Presentation views (RCC, LCC, RMLO, LMLO) of a compressed
breast with skin, fibroglandular texture of BI-RADS density A-D, pectoral muscle on MLO, nipple,
masses seen in both views of a breast, calcifications and a bright blob outside the breast.

Geometry is in pixels: the images are smaller than clinical ones, the breast fills them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from scipy import ndimage

from dicomnode.phantoms._dicom import base_dataset, phantom_uid, set_pixels
from dicomnode.phantoms._fields import smooth_noise_2d
from dicomnode.phantoms.chest import Distractor

__all__ = ["MG_PRESENTATION_STORAGE", "BreastTruth", "MammoCase", "mammography"]

MG_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.2"

_DENSITY_FRACTION = {"A": (0.06, 0.2), "B": (0.3, 0.45), "C": (0.55, 0.7), "D": (0.8, 0.92)}
_VIEW_CODES = {
    "CC": ("399162004", "cranio-caudal"),
    "MLO": ("399368009", "medio-lateral oblique"),
}
_ORIENTATION = {
    ("R", "CC"): ["P", "L"],
    ("L", "CC"): ["A", "R"],
    ("R", "MLO"): ["P", "F"],
    ("L", "MLO"): ["A", "F"],
}


@dataclass(frozen=True)
class BreastTruth:
    """Truth of one breast: a mass or not (with its kind), and the study's density letter."""

    laterality: str
    has_mass: bool
    mass_kind: str | None
    density: str


@dataclass(frozen=True)
class MammoCase:
    """A 4-view mammography phantom: datasets (RCC, LCC, RMLO, LMLO) and truth per breast."""

    seed: int
    datasets: list[Dataset]
    breasts: tuple[BreastTruth, ...]
    density: str
    distractors: tuple[Distractor, ...]

    def has_mass(self, laterality: str) -> bool:
        """Whether the breast of ``laterality`` ("L" or "R") holds a mass."""
        return next(b.has_mass for b in self.breasts if b.laterality == laterality)


def _outline(rng, rows: int, cols: int, mlo: bool):
    """Breast mask, distance from the chest wall (0-1 of the depth) and thickness profile.

    The chest wall is at column 0 (images are flipped for the right breast afterwards).
    """
    j, i = np.mgrid[0:rows, 0:cols].astype(np.float32)
    depth = cols * float(rng.uniform(0.68, 0.88))
    half = rows * float(rng.uniform(0.36, 0.45))
    centre = rows * (0.55 if mlo else 0.5) + float(rng.uniform(-0.04, 0.04)) * rows
    p = float(rng.uniform(1.7, 2.6))
    u = i / depth
    v = (j - centre) / half
    if mlo:  # the axillary tail reaches up along the chest wall
        v = np.where(v < 0, v / (1.0 + 0.5 * np.clip(1 - u * 1.6, 0, 1)), v)
    v = v + 0.04 * smooth_noise_2d(rng, (rows, cols), rows / 10)
    r = (np.abs(u) ** p + np.abs(v) ** p) ** (1 / p)
    nipple = ((i - depth) ** 2 + (j - centre) ** 2) < (rows * 0.018) ** 2
    mask = (r < 1.0) | nipple
    thickness = (
        np.sqrt(np.clip(1.0 - r**2, 0, 1)) ** 0.5
    )  # compressed: flat, rolling off at the edge
    return mask, u, v, thickness, (depth, centre, half)


def _glands(rng, u, v, mask, fraction: float, rows: int) -> np.ndarray:
    """Fibroglandular tissue (0-1), streaked towards the nipple, covering ``fraction``."""
    angle = np.arctan2(v, 1.0 - u)
    radial = smooth_noise_2d(rng, u.shape, rows / 60)
    streaks = ndimage.map_coordinates(
        smooth_noise_2d(rng, (256, 64), (1.0, 6.0)),
        [np.clip((angle + 1.6) / 3.2 * 255, 0, 255), np.clip((1.0 - u) * 63, 0, 63)],
        order=1,
    )
    cone = -2.0 * (np.abs(v) ** 2) - 1.2 * np.abs(u - 0.45)
    field = cone + 0.6 * radial + 0.5 * streaks
    level = np.quantile(field[mask], 1.0 - fraction)
    glands = 1.0 / (1.0 + np.exp(-(field - level) * 6.0))
    return ndimage.gaussian_filter(glands, 1.0) * mask


def _mass(
    rng, rows: int, cols: int, centre: tuple[float, float], size: float, kind: str
) -> np.ndarray:
    j, i = np.mgrid[0:rows, 0:cols].astype(np.float32)
    dx, dy = i - centre[1], j - centre[0]
    theta = np.arctan2(dy, dx)
    rr = np.hypot(dx, dy)
    radius = np.full_like(rr, size / 2)
    if kind == "oval":
        a = float(rng.uniform(0, math.pi))
        radius = size / 2 / np.sqrt(np.cos(theta - a) ** 2 + (np.sin(theta - a) / 0.6) ** 2)
    elif kind in ("irregular", "spiculated"):
        for m in (3, 5, 7):
            radius = radius * (1 + 0.12 * math.cos(0) * np.cos(m * theta + rng.uniform(0, 6.3)))
    profile = np.sqrt(np.clip(1 - (rr / radius) ** 2, 0, 1))
    if kind == "spiculated":
        for a in rng.uniform(0, 2 * math.pi, int(rng.integers(8, 16))):
            along = dx * math.cos(a) + dy * math.sin(a)
            across = np.abs(-dx * math.sin(a) + dy * math.cos(a))
            length = size * rng.uniform(0.9, 1.6)
            spike = (along > 0) & (along < length) & (across < 1.2 * (1 - along / length))
            profile = np.maximum(profile, 0.35 * spike)
    return ndimage.gaussian_filter(profile, 0.8)


def _view(rng, rows, cols, mlo, fraction, mass, calc) -> tuple[np.ndarray, np.ndarray]:
    mask, u, v, thickness, (depth, centre, half) = _outline(rng, rows, cols, mlo)
    glands = _glands(rng, u, v, mask, fraction, rows)
    atten = thickness * (0.35 + 0.45 * glands) * mask
    skin = mask & ~ndimage.binary_erosion(mask, iterations=2)
    atten = atten + 0.12 * skin
    if mlo:  # pectoral muscle: a band along the chest wall, widest at the top
        j, i = np.mgrid[0:rows, 0:cols].astype(np.float32)
        width = (
            cols * float(rng.uniform(0.18, 0.3)) * (1 - j / (rows * float(rng.uniform(0.5, 0.75))))
        )
        pectoral = (i < width) & mask
        atten = np.where(pectoral, np.maximum(atten, 0.85 * thickness + 0.1), atten)
    if mass is not None:
        kind, u0, v0, size = mass
        atten = (
            atten
            + 0.45
            * _mass(rng, rows, cols, (centre + v0 * half, u0 * depth), size * rows, kind)
            * mask
        )
    for _ in range(calc):
        cj, ci = centre + rng.uniform(-0.6, 0.6) * half, rng.uniform(0.15, 0.8) * depth
        for _ in range(int(rng.integers(4, 12))):
            pj, pi = int(cj + rng.normal(0, 6)), int(ci + rng.normal(0, 6))
            if 0 <= pj < rows and 0 <= pi < cols and mask[pj, pi]:
                atten[pj, pi] += float(rng.uniform(0.3, 0.6))
    return atten, mask


def mammography(
    seed: int,
    *,
    shape: tuple[int, int] | None = None,
    mass_probability: float = 0.5,
    photometric: str | None = None,
) -> MammoCase:
    """A 4-view mammography phantom with per-breast truth.

    Parameters
    ----------
    seed : int
        Everything follows from it.
    shape : tuple of 2 int, optional
        Rows and columns of each view; drawn around 600 x 480 when omitted.
    mass_probability : float
        Probability that each breast holds a mass.
    photometric : str, optional
        MONOCHROME1 or MONOCHROME2; drawn when omitted.
    """
    rng = np.random.default_rng([seed, 3])
    if shape is None:
        scale = float(rng.uniform(0.85, 1.15))
        shape = (int(600 * scale), int(480 * scale))
    photometric = photometric or str(rng.choice(["MONOCHROME1", "MONOCHROME2"]))
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"photometric must be MONOCHROME1 or MONOCHROME2, got {photometric!r}")
    letter = str(rng.choice(list(_DENSITY_FRACTION)))
    bits = int(rng.choice([12, 14, 16]))
    spacing = float(rng.uniform(0.07, 0.1))
    breasts, views, distractors = [], [], []
    for side in ("R", "L"):
        has_mass = bool(rng.random() < mass_probability)
        kind = str(rng.choice(["round", "oval", "irregular", "spiculated"])) if has_mass else None
        u0, size = float(rng.uniform(0.3, 0.75)), float(rng.uniform(0.05, 0.13))
        breasts.append(BreastTruth(side, has_mass, kind, letter))
        fraction = float(rng.uniform(*_DENSITY_FRACTION[letter]))
        for projection in ("CC", "MLO"):
            mass = (
                (kind, u0 + rng.uniform(-0.05, 0.05), float(rng.uniform(-0.5, 0.5)), size)
                if kind
                else None
            )
            atten, mask = _view(
                rng, *shape, projection == "MLO", fraction, mass, int(rng.integers(0, 3))
            )
            blob = _background_blob(rng, atten, mask)
            distractors.append(Distractor(f"blob_{side}{projection}", blob))
            if side == "R":
                atten = atten[:, ::-1]
            views.append((side, projection, atten))
    order = [("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO")]
    views.sort(key=lambda v: order.index((v[0], v[1])))
    datasets = [
        _dataset(seed, rng, n, side, proj, atten, bits, spacing, photometric)
        for n, (side, proj, atten) in enumerate(views, start=1)
    ]
    return MammoCase(seed, datasets, tuple(breasts), letter, tuple(distractors))


def _background_blob(rng, atten: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    rows, cols = atten.shape
    outside = np.argwhere(~ndimage.binary_dilation(mask, iterations=25))
    if not len(outside):
        return (-1.0, -1.0)
    cj, ci = outside[int(rng.integers(len(outside)))]
    j, i = np.mgrid[0:rows, 0:cols]
    r = float(rng.uniform(6, 16))
    atten += 0.6 * (((j - cj) / r) ** 2 + ((i - ci) / (r * 0.6)) ** 2 < 1)
    return (float(cj), float(ci))


def _dataset(seed, rng, n, side, projection, atten, bits, spacing, photometric) -> Dataset:
    top = 2**bits - 1
    signal = 0.03 + 0.8 * atten / 1.3
    noisy = signal + rng.normal(0, 1, atten.shape) * 0.008 * np.sqrt(
        np.clip(signal, 0.01, None) * 10
    )
    values = np.clip(noisy, 0, 1) * top
    if photometric == "MONOCHROME1":
        values = top - values
    ds = base_dataset(
        kind="breast",
        seed=seed,
        sop_class_uid=MG_PRESENTATION_STORAGE,
        modality="MG",
        instance=n,
        series_number=1,
        series_description="Phantom screening views",
    )
    ds.ImageType = ["ORIGINAL", "PRIMARY", ""]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageLaterality = side
    ds.SeriesInstanceUID = phantom_uid("breast", seed, "series", side, projection)
    ds.SeriesNumber = n
    ds.PatientOrientation = _ORIENTATION[(side, projection)]
    code, meaning = _VIEW_CODES[projection]
    view = Dataset()
    view.CodeValue, view.CodingSchemeDesignator, view.CodeMeaning = code, "SCT", meaning
    view.ViewModifierCodeSequence = []
    ds.ViewCodeSequence = [view]
    region = Dataset()
    region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = (
        "76752008",
        "SCT",
        "Breast",
    )
    ds.AnatomicRegionSequence = [region]
    ds.BodyPartExamined = "BREAST"
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = -1 if photometric == "MONOCHROME1" else 1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "INVERSE" if photometric == "MONOCHROME1" else "IDENTITY"
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = "NO"
    ds.ImagerPixelSpacing = [round(spacing, 5), round(spacing, 5)]
    ds.PixelSpacing = [round(spacing, 5), round(spacing, 5)]
    ds.DetectorType = "DIRECT"
    ds.PositionerType = "MAMMOGRAPHIC"
    ds.OrganExposed = "BREAST"
    ds.BreastImplantPresent = "NO"
    ds.PartialView = "NO"
    ds.AcquisitionDate, ds.AcquisitionTime = ds.StudyDate, ds.StudyTime
    ds.KVP = 29
    ds.BodyPartThickness = 50
    ds.CompressionForce = 100
    ds.DistanceSourceToDetector = 660
    ds.DistanceSourceToPatient = 640
    ds.WindowCenter = top // 2
    ds.WindowWidth = top
    ds.QualityControlImage = "NO"
    ds.AcquisitionContextSequence = []
    set_pixels(ds, np.rint(values).astype(np.uint16), bits_stored=bits, photometric=photometric)
    return ds
