"""Synthetic chest CT series with lung nodules of known position, size and type."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from dicomnode.synthetic._chest import TISSUE_HU, ChestPhantom, Tissue, lung_texture_fields
from dicomnode.synthetic.common import (
    Equipment,
    axial_geometry,
    axis_coordinates,
    base_dataset,
    make_series_header,
    make_study_header,
    rng_for,
    set_image_plane,
    set_pixel_data,
)
from dicomnode.synthetic.truth import Nodule, NoduleKind, VolumeGeometry

__all__ = ["CT_IMAGE_STORAGE", "ChestCT", "NoduleSpec", "chest_ct"]

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_RESCALE_INTERCEPT = -1024
_SOLID_HU, _CORE_HU, _GROUND_GLASS_HU = 35.0, 25.0, -560.0
_CORE_RATIO = 0.45
_EQUIPMENT = Equipment(
    manufacturer="DICOMNODE SYNTHETIC",
    model="PHANTOM CT",
    station_name="SYNCT01",
    serial_number="CT0001",
)


@dataclass(frozen=True)
class NoduleSpec:
    """A nodule requested at a given place.

    Parameters
    ----------
    centre_mm : tuple of float
        Centre in patient coordinates (mm); it should lie in a lung.
    diameter_mm : float
        Diameter, 3–30 mm.
    kind : NoduleKind or str
        ``"solid"`` or ``"part_solid"``.
    """

    centre_mm: tuple[float, float, float]
    diameter_mm: float
    kind: NoduleKind | str = NoduleKind.SOLID

    def __post_init__(self) -> None:
        if not 3.0 <= self.diameter_mm <= 30.0:
            raise ValueError(f"diameter_mm must lie in 3–30 mm, got {self.diameter_mm}")
        object.__setattr__(self, "kind", NoduleKind(self.kind))


@dataclass
class ChestCT:
    """A generated chest CT series and its ground truth.

    Attributes
    ----------
    datasets : list of Dataset
        One CT Image Storage instance per slice, ordered by InstanceNumber (= slice index + 1).
    nodules : list of Nodule
        The nodules in the volume.
    geometry : VolumeGeometry
        Voxel-to-patient geometry of the series.
    volume : numpy.ndarray
        The image in HU, int16, indexed ``[k, j, i]``.
    """

    datasets: list[Dataset]
    nodules: list[Nodule]
    geometry: VolumeGeometry
    volume: np.ndarray


def chest_ct(
    seed: int = 0,
    *,
    shape: tuple[int, int, int] = (96, 96, 48),
    pixel_spacing_mm: float | None = None,
    slice_spacing_mm: float | None = None,
    slice_thickness_mm: float | None = None,
    n_nodules: int = 2,
    nodules: Sequence[NoduleSpec] | None = None,
    diameter_range_mm: tuple[float, float] = (5.0, 25.0),
    part_solid_probability: float = 0.35,
    noise_hu: float = 12.0,
    reverse_order: bool = False,
) -> ChestCT:
    """Generate a chest CT series.

    Parameters
    ----------
    seed : int
        Makes everything repeatable: same seed and arguments, byte-identical datasets.
    shape : tuple of int
        ``(rows, columns, slices)``, e.g. ``(512, 512, 300)``.
    pixel_spacing_mm : float, optional
        Square pixel spacing; default: a 360 mm field of view over the wider image side.
    slice_spacing_mm : float, optional
        Distance between slices; default ``300 / slices`` within 0.625–2.5 mm.
    slice_thickness_mm : float, optional
        Nominal slice thickness; default the slice spacing.
    n_nodules : int
        Number of randomly placed nodules (ignored when ``nodules`` is given).
    nodules : sequence of NoduleSpec, optional
        Explicit nodules instead of random ones.
    diameter_range_mm : tuple of float
        Range of random nodule diameters, within 3–30 mm.
    part_solid_probability : float
        Probability that a random nodule is part-solid.
    noise_hu : float
        Standard deviation of the Gaussian image noise.
    reverse_order : bool
        False: slice 1 is the most inferior; True: slice 1 is the most superior.

    Returns
    -------
    ChestCT
    """
    rows, columns, slices = shape
    spacing = _spacing(shape, pixel_spacing_mm, slice_spacing_mm, slice_thickness_mm)
    geometry = axial_geometry(
        (slices, rows, columns),
        pixel_spacing_mm=spacing[0],
        slice_spacing_mm=spacing[1],
        slice_thickness_mm=spacing[2],
        centre_mm=(0.0, 0.0, -150.0),
        reverse_order=reverse_order,
    )
    phantom = _phantom(geometry)
    if nodules is None:
        lo, hi = diameter_range_mm
        if not 3.0 <= lo <= hi <= 30.0:
            raise ValueError(f"diameter_range_mm must lie within 3–30 mm, got {diameter_range_mm}")
        if n_nodules < 0:
            raise ValueError(f"n_nodules must be >= 0, got {n_nodules}")
        rng = rng_for(seed, "ct", "nodules")
        nodules = _random_nodules(rng, phantom, geometry, n_nodules, lo, hi, part_solid_probability)
    truth = [_nodule_truth(spec, geometry) for spec in nodules]
    volume = _render(seed, phantom, geometry, truth, noise_hu)
    datasets = _datasets(seed, volume, geometry)
    return ChestCT(datasets=datasets, nodules=truth, geometry=geometry, volume=volume)


def _spacing(
    shape: tuple[int, int, int],
    pixel_spacing: float | None,
    slice_spacing: float | None,
    thickness: float | None,
) -> tuple[float, float, float]:
    rows, columns, slices = shape
    if min(shape) < 1:
        raise ValueError(f"shape must be positive (rows, columns, slices), got {shape}")
    pixel = pixel_spacing if pixel_spacing is not None else 360.0 / max(rows, columns)
    spacing = slice_spacing if slice_spacing is not None else min(2.5, max(0.625, 300 / slices))
    return (pixel, spacing, thickness if thickness is not None else spacing)


def _phantom(geometry: VolumeGeometry) -> ChestPhantom:
    slices, rows, columns = geometry.shape
    half_width = min(rows, columns) * geometry.pixel_spacing_mm[0] / 2
    scale = min(1.0, 0.95 * half_width / 165.0)
    _, _, z = axis_coordinates(geometry)
    coverage = float(abs(z[-1] - z[0]))
    length = min(260.0, max(60.0, 0.9 * coverage))
    centre = float(z.mean())
    return ChestPhantom(scale, centre - length / 2, centre + length / 2)


def _random_nodules(
    rng: np.random.Generator,
    phantom: ChestPhantom,
    geometry: VolumeGeometry,
    count: int,
    low: float,
    high: float,
    part_solid_probability: float,
) -> list[NoduleSpec]:
    _, _, z = axis_coordinates(geometry)
    z_low, z_high = float(min(z[0], z[-1])), float(max(z[0], z[-1]))
    sphere = _unit_sphere_points()
    specs: list[NoduleSpec] = []
    for _ in range(count):
        for _attempt in range(500):
            diameter = float(rng.uniform(low, high))
            radius = diameter / 2
            centre = (
                float(rng.uniform(-140, 140) * phantom.scale),
                float(rng.uniform(-80, 70) * phantom.scale),
                float(rng.uniform(z_low + radius, max(z_low + radius, z_high - radius))),
            )
            if any(_too_close(centre, radius, other) for other in specs):
                continue
            if not phantom.all_lung(np.asarray([centre])):
                continue
            points = np.asarray(centre) + sphere * (radius + 3.0)
            points[:, 2] = np.clip(points[:, 2], z_low, z_high)
            if phantom.all_lung(points):
                kind = (
                    NoduleKind.PART_SOLID
                    if rng.random() < part_solid_probability
                    else NoduleKind.SOLID
                )
                specs.append(NoduleSpec(centre, round(diameter, 2), kind))
                break
        else:
            raise ValueError(
                f"could not place {count} nodules in the lungs of volume shape {geometry.shape}"
            )
    return specs


def _unit_sphere_points() -> np.ndarray:
    grid = np.stack(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1]), axis=-1).reshape(-1, 3)
    points = grid[np.any(grid != 0, axis=1)].astype(float)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def _too_close(centre: tuple[float, float, float], radius: float, other: NoduleSpec) -> bool:
    distance = float(np.linalg.norm(np.subtract(centre, other.centre_mm)))
    return distance < radius + other.diameter_mm / 2 + 10.0


def _nodule_truth(spec: NoduleSpec, geometry: VolumeGeometry) -> Nodule:
    kind = NoduleKind(spec.kind)
    solid = spec.diameter_mm if kind is NoduleKind.SOLID else spec.diameter_mm * _CORE_RATIO
    return Nodule(
        centre_mm=tuple(float(v) for v in spec.centre_mm),  # type: ignore[arg-type]
        diameter_mm=float(spec.diameter_mm),
        kind=kind,
        centre_index=geometry.patient_to_index(*spec.centre_mm),
        solid_diameter_mm=round(solid, 3),
    )


def _render(
    seed: int,
    phantom: ChestPhantom,
    geometry: VolumeGeometry,
    nodules: list[Nodule],
    noise_hu: float,
) -> np.ndarray:
    """Render the volume slice by slice (vectorised in-plane) and return int16 HU."""
    x, y, z = axis_coordinates(geometry)
    xs, ys = x[None, :].astype(np.float32), y[:, None].astype(np.float32)
    cos_fields, sin_fields, kz = lung_texture_fields(rng_for(seed, "ct", "texture"), xs, ys)
    noise_rng = rng_for(seed, "ct", "noise")
    ramp = float(min(geometry.pixel_spacing_mm))
    volume = np.empty(geometry.shape, np.int16)
    # Render from the feet up whatever the stacking order, so that reverse_order only flips it.
    order = np.argsort(z, kind="stable")
    for k in order:
        zk = z[k]
        labels = phantom.labels(xs, ys, float(zk))
        hu = TISSUE_HU[labels]
        texture = sum(
            c * np.float32(np.cos(f * zk)) - s * np.float32(np.sin(f * zk))
            for c, s, f in zip(cos_fields, sin_fields, kz, strict=True)
        )
        lung = labels == Tissue.LUNG
        hu[lung] += np.asarray(texture, np.float32)[lung]
        for nodule in nodules:
            _paint_nodule(hu, nodule, x, y, float(zk), ramp)
        hu += noise_rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(noise_hu)
        np.clip(np.rint(hu), -1024, 3071, out=hu)
        volume[k] = hu
    return volume


def _paint_nodule(
    hu: np.ndarray, nodule: Nodule, x: np.ndarray, y: np.ndarray, z: float, ramp: float
) -> None:
    """Blend one nodule into the HU slice at height ``z`` (partial volume over ``ramp`` mm)."""
    cx, cy, cz = nodule.centre_mm
    radius = nodule.diameter_mm / 2
    dz = abs(z - cz)
    if dz > radius + ramp:
        return
    cols = np.nonzero(np.abs(x - cx) <= radius + ramp)[0]
    rows = np.nonzero(np.abs(y - cy) <= radius + ramp)[0]
    if cols.size == 0 or rows.size == 0:
        return
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    distance = np.sqrt(
        (x[window[1]][None, :] - cx) ** 2 + (y[window[0]][:, None] - cy) ** 2 + dz**2
    ).astype(np.float32)
    patch = hu[window]
    if nodule.kind is NoduleKind.SOLID:
        layers = [(radius, _SOLID_HU)]
    else:
        layers = [(radius, _GROUND_GLASS_HU), (radius * _CORE_RATIO, _CORE_HU)]
    for layer_radius, value in layers:
        weight = np.clip((layer_radius - distance) / ramp + 0.5, 0.0, 1.0)
        patch += weight * (np.float32(value) - patch)


def _datasets(seed: int, volume: np.ndarray, geometry: VolumeGeometry) -> list[Dataset]:
    study = make_study_header(seed, "CT", description="CT CHEST WITHOUT CONTRAST")
    thickness = geometry.slice_thickness_mm
    series = make_series_header(
        study,
        "chest",
        number=2,
        description=f"CHEST {thickness:g}mm LUNG",
        modality="CT",
        body_part="CHEST",
        protocol_name="CHEST ROUTINE",
    )
    field_of_view = geometry.pixel_spacing_mm[1] * geometry.shape[2]
    datasets = []
    for k in range(geometry.shape[0]):
        ds = base_dataset(
            study, series, _EQUIPMENT, sop_class_uid=CT_IMAGE_STORAGE, instance_number=k + 1
        )
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PatientPosition = "HFS"
        ds.FrameOfReferenceUID = study.frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        ds.AcquisitionNumber = 1
        set_image_plane(ds, geometry, k)
        _ct_acquisition(ds, field_of_view)
        stored = (volume[k].astype(np.int32) - _RESCALE_INTERCEPT).astype(np.int16)
        set_pixel_data(ds, stored, bits_stored=16)
        ds.RescaleIntercept = str(_RESCALE_INTERCEPT)
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = ["-600", "40"]
        ds.WindowWidth = ["1500", "400"]
        ds.WindowCenterWidthExplanation = ["LUNG", "MEDIASTINUM"]
        datasets.append(ds)
    return datasets


def _ct_acquisition(ds: Dataset, field_of_view: float) -> None:
    """CT Image module acquisition attributes of a routine chest protocol."""
    ds.ScanOptions = "HELICAL MODE"
    ds.KVP = "120"
    ds.DataCollectionDiameter = "500"
    ds.ReconstructionDiameter = f"{field_of_view:.3f}".rstrip("0").rstrip(".")
    ds.DistanceSourceToDetector = "1040"
    ds.DistanceSourceToPatient = "570"
    ds.GantryDetectorTilt = "0"
    ds.TableHeight = "160"
    ds.RotationDirection = "CW"
    ds.ExposureTime = "500"
    ds.XRayTubeCurrent = 200
    ds.Exposure = 100
    ds.FilterType = "BODY"
    ds.GeneratorPower = 24
    ds.FocalSpots = "1.2"
    ds.ConvolutionKernel = "LUNG"
    ds.RevolutionTime = 0.5
    ds.SingleCollimationWidth = 0.625
    ds.TotalCollimationWidth = 40.0
    ds.TableSpeed = 80.0
    ds.TableFeedPerRotation = 40.0
    ds.SpiralPitchFactor = 1.0
