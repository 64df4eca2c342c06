"""Synthetic 4-view screening mammography (Digital Mammography X-Ray Image – For Presentation)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset

from dicomnode.synthetic._breast import (
    BreastShape,
    MassPlacement,
    breast_shape,
    mass_point,
    render_view,
)
from dicomnode.synthetic._breast_domain import (
    BreastTexture,
    MammoVariation,
    MassShape,
    apply_exposure,
)
from dicomnode.synthetic.common import (
    Equipment,
    StudyHeader,
    base_dataset,
    make_series_header,
    make_study_header,
    rng_for,
    set_pixel_data,
)
from dicomnode.synthetic.truth import (
    DensityClass,
    Laterality,
    MammoTruth,
    Mass,
    PixelPoint,
    Projection,
    View,
)

__all__ = [
    "MG_FOR_PRESENTATION_STORAGE",
    "BreastTexture",
    "Mammogram",
    "MammoVariation",
    "MassShape",
    "mammography",
]

MG_FOR_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.2"
VIEW_ORDER = (View.RCC, View.LCC, View.RMLO, View.LMLO)
_SOURCE_DETECTOR_MM, _SOURCE_PATIENT_MM = 660.0, 610.0
_MAGNIFICATION = _SOURCE_DETECTOR_MM / _SOURCE_PATIENT_MM
_VIEW_CODES = {
    Projection.CC: ("399162004", "cranio-caudal"),
    Projection.MLO: ("399368009", "medio-lateral oblique"),
}
_PATIENT_ORIENTATION = {
    View.RCC: ["P", "L"],
    View.LCC: ["A", "R"],
    View.RMLO: ["P", "FL"],
    View.LMLO: ["A", "FR"],
}
_EQUIPMENT = Equipment(
    manufacturer="DICOMNODE SYNTHETIC",
    model="PHANTOM FFDM",
    station_name="SYNMG01",
    serial_number="MG0001",
)


@dataclass
class Mammogram:
    """A generated mammography study and its ground truth.

    Attributes
    ----------
    datasets : list of Dataset
        One instance per view, in the order of ``views``.
    views : list of View
        The view of each dataset.
    truth : MammoTruth
        Density class, fibroglandular fraction per view, masses with their positions per view.
    breast_masks, pectoral_masks : dict of View to numpy.ndarray
        Boolean masks of the breast (pectoral muscle included) and of the pectoral muscle.
    calcifications : dict of View to list of PixelPoint
        Calcification dots per view (distractors: they are not masses).
    variation : MammoVariation, optional
        The domain families the study was drawn with (None: the original phantom).
    """

    datasets: list[Dataset]
    views: list[View]
    truth: MammoTruth
    breast_masks: dict[View, np.ndarray] = field(default_factory=dict)
    pectoral_masks: dict[View, np.ndarray] = field(default_factory=dict)
    calcifications: dict[View, list[PixelPoint]] = field(default_factory=dict)
    variation: MammoVariation | None = None

    def dataset(self, view: View | str) -> Dataset:
        """Return the dataset of ``view``."""
        return self.datasets[self.views.index(View(view))]


def mammography(
    seed: int = 0,
    *,
    shape: tuple[int, int] = (512, 416),
    pixel_spacing_mm: float | None = None,
    density: DensityClass | str | None = None,
    masses: dict[Laterality | str, int] | None = None,
    mass_probability: float = 0.3,
    diameter_range_mm: tuple[float, float] = (8.0, 25.0),
    bits_stored: int = 12,
    photometric: str = "MONOCHROME2",
    series_per_view: bool = False,
    noise: float = 25.0,
    variation: MammoVariation | None = None,
) -> Mammogram:
    """Generate a 4-view screening mammogram (RCC, LCC, RMLO, LMLO).

    Parameters
    ----------
    seed : int
        Same seed and arguments give byte-identical datasets.
    shape : tuple of int
        ``(rows, columns)`` of every view.
    pixel_spacing_mm : float, optional
        PixelSpacing at the breast; default a 240 mm high image.
    density : DensityClass or str, optional
        Breast composition A–D; drawn from the seed when not given.
    masses : dict of Laterality to int, optional
        Number of masses per breast, e.g. ``{"L": 1}``; default: each breast holds one mass with
        probability ``mass_probability``.
    mass_probability : float
        See ``masses``.
    diameter_range_mm : tuple of float
        Range of mass diameters.
    bits_stored : int
        12–16; the pixel values span the range of this depth.
    photometric : {"MONOCHROME2", "MONOCHROME1"}
        MONOCHROME1 stores inverted values (dense tissue low) with an INVERSE presentation LUT.
    series_per_view : bool
        One series per view instead of one series holding the four views.
    noise : float
        Standard deviation of the noise in 12-bit units.
    variation : MammoVariation, optional
        Domain families (breast size and outline, texture model, mass shapes and contrast,
        calcification clusters, pectoral size, skin line, exposure curve, VOI LUT); None keeps
        the original output byte for byte.
    """
    rows, columns = shape
    if min(shape) < 32:
        raise ValueError(f"shape must be at least 32 × 32 (rows, columns), got {shape}")
    if not 12 <= bits_stored <= 16:
        raise ValueError(f"bits_stored must lie in 12..16, got {bits_stored}")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"photometric must be MONOCHROME1 or MONOCHROME2, got {photometric!r}")
    spacing = pixel_spacing_mm or 240.0 / rows
    rng = rng_for(seed, "mg", "layout")
    density = (
        DensityClass(density) if density is not None else DensityClass("ABCD"[rng.integers(4)])
    )
    low, high = density.fraction_range
    fraction = float(rng.uniform(low + 0.05, high - 0.05))
    breasts = {
        side: breast_shape(rng, columns * spacing, rows * spacing)
        for side in (Laterality.RIGHT, Laterality.LEFT)
    }
    counts = _mass_counts(rng, masses, mass_probability)
    placements = {
        side: [_place_mass(rng, diameter_range_mm, breasts[side]) for _ in range(counts[side])]
        for side in breasts
    }
    clusters: dict[Laterality, tuple[MassPlacement, ...]] = {side: () for side in breasts}
    if variation is not None:
        breasts, placements, clusters = _vary_layout(
            rng_for(seed, "mg", "families"), variation, breasts, placements
        )
    study = make_study_header(seed, "MG", description="MAMMOGRAPHY SCREENING BILATERAL", sex="F")
    datasets, fractions, rendered = [], {}, {}
    for number, view in enumerate(VIEW_ORDER, start=1):
        side = view.laterality
        rendered[view] = render_view(
            view,
            breasts[side],
            fraction,
            placements[side],
            rng_for(seed, "mg", "view", view),
            shape,
            spacing,
            noise,
            variation,
            clusters[side],
        )
        image, fractions[view] = rendered[view].image, rendered[view].fraction
        if variation is not None:
            image = apply_exposure(image, variation.gamma, variation.exposure)
        stored = _stored(image, bits_stored, photometric)
        ds = _dataset(
            study, view, number, stored, spacing, bits_stored, photometric, series_per_view
        )
        if variation is not None:
            _window_from_breast(ds, stored, rendered[view].breast, variation)
        datasets.append(ds)
    truth_masses = tuple(
        Mass(
            laterality=side,
            diameter_mm=placement.diameter_mm,
            positions={
                view: mass_point(view, placement, breasts[side], shape, spacing)
                for view in VIEW_ORDER
                if view.laterality is side
            },
        )
        for side in breasts
        for placement in placements[side]
    )
    truth = MammoTruth(density=density, fibroglandular_fraction=fractions, masses=truth_masses)
    return Mammogram(
        datasets=datasets,
        views=list(VIEW_ORDER),
        truth=truth,
        breast_masks={view: r.breast for view, r in rendered.items()},
        pectoral_masks={view: r.pectoral for view, r in rendered.items()},
        calcifications={view: r.calcifications for view, r in rendered.items()},
        variation=variation,
    )


def _vary_layout(
    rng: np.random.Generator,
    variation: MammoVariation,
    breasts: dict[Laterality, BreastShape],
    placements: dict[Laterality, list[MassPlacement]],
) -> tuple[
    dict[Laterality, BreastShape],
    dict[Laterality, list[MassPlacement]],
    dict[Laterality, tuple[MassPlacement, ...]],
]:
    """Scale the breasts, give each mass a shape and contrast, place calcification clusters."""
    scale = variation.breast_scale
    varied = {
        side: dataclasses.replace(
            breast,
            depth=breast.depth * scale,
            half_height_cc=breast.half_height_cc * scale,
            half_height_mlo=breast.half_height_mlo * scale,
            roundness=variation.roundness,
        )
        for side, breast in breasts.items()
    }
    shaped = {
        side: [
            dataclasses.replace(
                placement,
                shape=variation.mass_shapes[int(rng.integers(len(variation.mass_shapes)))],
                contrast=float(rng.uniform(*variation.mass_contrast)),
                dome=float(rng.uniform(*variation.mass_dome)),
            )
            for placement in side_placements
        ]
        for side, side_placements in placements.items()
    }
    low, high = variation.calcification_clusters
    clusters = {
        side: tuple(
            _place_mass(rng, (1.0, 1.0), varied[side])
            for _ in range(int(rng.integers(low, high + 1)))
        )
        for side in varied
    }
    return varied, shaped, clusters


def _window_from_breast(
    ds: Dataset, stored: np.ndarray, breast: np.ndarray, variation: MammoVariation
) -> None:
    """Window on the breast's own 1st–99th percentile, with the variation's VOI LUT function."""
    low, high = np.percentile(stored[breast], [1, 99]) if breast.any() else (0, 1)
    ds.WindowCenter = int(round((low + high) / 2))
    ds.WindowWidth = max(2, int(round(high - low)))
    ds.VOILUTFunction = variation.voi_lut_function


def _mass_counts(
    rng: np.random.Generator, masses: dict[Laterality | str, int] | None, probability: float
) -> dict[Laterality, int]:
    draws = {side: int(rng.random() < probability) for side in (Laterality.RIGHT, Laterality.LEFT)}
    if masses is None:
        return draws
    counts = {Laterality.RIGHT: 0, Laterality.LEFT: 0}
    for side, count in masses.items():
        if count < 0:
            raise ValueError(f"mass count must be >= 0, got {count} for {side}")
        counts[Laterality(side)] = count
    return counts


def _place_mass(
    rng: np.random.Generator, diameter_range_mm: tuple[float, float], breast: BreastShape
) -> MassPlacement:
    if not 0 < diameter_range_mm[0] <= diameter_range_mm[1]:
        raise ValueError(
            f"diameter_range_mm must be an increasing positive pair: {diameter_range_mm}"
        )
    diameter = float(rng.uniform(*diameter_range_mm))
    while True:
        d, m, s = rng.uniform(0.25, 0.7), rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)
        if d**2 + m**2 < 0.6 and d**2 + s**2 < 0.6:
            return MassPlacement(float(d), float(m), float(s), round(diameter, 2))


def _stored(image: np.ndarray, bits_stored: int, photometric: str) -> np.ndarray:
    top = (1 << bits_stored) - 1
    values = np.clip(np.rint(image * ((1 << bits_stored) / 4096.0)), 0, top)
    if photometric == "MONOCHROME1":
        values = top - values
    return values.astype(np.uint16)


def _dataset(
    study: StudyHeader,
    view: View,
    number: int,
    pixels: np.ndarray,
    spacing: float,
    bits_stored: int,
    photometric: str,
    series_per_view: bool,
) -> Dataset:
    series = make_series_header(
        study,
        view.value if series_per_view else "screening",
        number=number if series_per_view else 1,
        description=f"{view.laterality.value} {view.projection.value}"
        if series_per_view
        else "SCREENING MAMMOGRAPHY",
        modality="MG",
        body_part="BREAST",
        protocol_name="SCREENING BILATERAL",
    )
    instance = 1 if series_per_view else number
    ds = base_dataset(
        study,
        series,
        _EQUIPMENT,
        sop_class_uid=MG_FOR_PRESENTATION_STORAGE,
        instance_number=instance,
    )
    # Series Laterality (0020,0060) is type 2C: not allowed when ImageLaterality is present.
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.PatientOrientation = _PATIENT_ORIENTATION[view]
    ds.ImageLaterality = view.laterality.value
    ds.ViewPosition = view.projection.value
    ds.ViewCodeSequence = [_code(*_VIEW_CODES[view.projection])]
    ds.ViewCodeSequence[0].ViewModifierCodeSequence = []
    ds.AnatomicRegionSequence = [_code("76752008", "Breast")]
    ds.AcquisitionContextSequence = []
    _acquisition(ds, view, spacing)
    set_pixel_data(ds, pixels, bits_stored=bits_stored, photometric=photometric)
    top = 1 << bits_stored
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = -1 if photometric == "MONOCHROME2" else 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
    ds.PresentationLUTShape = "IDENTITY" if photometric == "MONOCHROME2" else "INVERSE"
    ds.WindowCenter, ds.WindowWidth = top // 2, top
    ds.VOILUTFunction = "LINEAR"
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = "NO"
    ds.RecognizableVisualFeatures = "NO"
    return ds


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "SCT"
    item.CodeMeaning = meaning
    return item


def _acquisition(ds: Dataset, view: View, spacing: float) -> None:
    """DX Detector, Positioning and X-Ray Acquisition Dose attributes of one exposure."""
    ds.ImagerPixelSpacing = [f"{spacing * _MAGNIFICATION:.6f}"] * 2
    ds.PixelSpacing = [f"{spacing:.6f}"] * 2
    ds.PixelSpacingCalibrationType = "GEOMETRY"
    ds.PixelSpacingCalibrationDescription = "Corrected for magnification at the breast"
    ds.EstimatedRadiographicMagnificationFactor = f"{_MAGNIFICATION:.6f}"
    ds.DetectorType = "DIRECT"
    ds.DetectorConfiguration = "AREA"
    ds.DetectorID = "SYNDET01"
    ds.PositionerType = "MAMMOGRAPHIC"
    angle = 0 if view.projection is Projection.CC else 45
    ds.PositionerPrimaryAngle = angle if view.laterality is Laterality.LEFT else -angle
    ds.DistanceSourceToDetector = f"{_SOURCE_DETECTOR_MM:g}"
    ds.DistanceSourceToPatient = f"{_SOURCE_PATIENT_MM:g}"
    ds.BodyPartThickness = "55"
    ds.CompressionForce = "110"
    ds.KVP = "29"
    ds.ExposureTime = 1200
    ds.XRayTubeCurrent = 100
    ds.Exposure = 120
    ds.AnodeTargetMaterial = "TUNGSTEN"
    ds.FilterMaterial = "RHODIUM"
    ds.FocalSpots = "0.3"
    ds.Grid = "RECIPROCATING"
    ds.OrganExposed = "BREAST"
    ds.BreastImplantPresent = "NO"
    ds.PartialView = "NO"
    ds.QualityControlImage = "NO"
