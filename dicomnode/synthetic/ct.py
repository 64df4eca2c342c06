"""Synthetic chest CT series with lung nodules of known position, size and type."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from pydicom.dataset import Dataset

from dicomnode.synthetic._chest import TISSUE_HU, ChestPhantom, Tissue, lung_texture_fields
from dicomnode.synthetic._ct_airways import Airway, airway_tree, paint_airway
from dicomnode.synthetic._ct_nodules import NoduleMix, NoduleSpec, nodule_truth, random_nodules
from dicomnode.synthetic._ct_scanner import (
    PixelConvention,
    ReconKernel,
    edge_response,
    encode,
    padding_hu,
    padding_value,
    shape_noise,
)
from dicomnode.synthetic._ct_shapes import (
    BLOOD_HU,
    CORE_HU,
    NoduleBody,
    Tube,
    nodule_body,
    paint_ball,
    paint_tube,
    vessel_tree,
)
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
from dicomnode.synthetic.pose import RigidPose, repose_volume
from dicomnode.synthetic.truth import Nodule, VolumeGeometry

__all__ = [
    "CHEST_CENTRE_MM",
    "CT_IMAGE_STORAGE",
    "ChestCT",
    "NoduleMix",
    "NoduleSpec",
    "PixelConvention",
    "ReconKernel",
    "chest_ct",
    "nodule_sites",
]

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_EQUIPMENT = Equipment(
    manufacturer="DICOMNODE SYNTHETIC",
    model="PHANTOM CT",
    station_name="SYNCT01",
    serial_number="CT0001",
)


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
        The image in HU (the stored pixels after rescale), int16, indexed ``[k, j, i]``.
    vessels : list of Tube
        The pulmonary vessel segments (painted inside the lungs only); empty without vessels.
    airways : list of Airway
        Trachea, main bronchi and the bronchi beside the arteries; empty without airways.
    """

    datasets: list[Dataset]
    nodules: list[Nodule]
    geometry: VolumeGeometry
    volume: np.ndarray
    vessels: list[Tube] = field(default_factory=list)
    airways: list[Airway] = field(default_factory=list)


@dataclass(frozen=True)
class _Scanner:
    noise_hu: float
    kernel: ReconKernel
    hu_offset: float
    convention: PixelConvention
    padding: bool
    partial_volume: bool


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
    kernel: ReconKernel | str = ReconKernel.NONE,
    hu_offset: float = 0.0,
    pixel_convention: PixelConvention | str = PixelConvention.SIGNED_OFFSET,
    padding: bool = False,
    partial_volume: bool = False,
    body_scale: float | None = None,
    body_aspect: float = 1.0,
    lung_scale: float = 1.0,
    diaphragm_shift_mm: float = 0.0,
    vessels: bool = False,
    airways: bool = False,
    mix: NoduleMix | None = None,
    pose: RigidPose | None = None,
    days_later: int = 0,
) -> ChestCT:
    """Generate a chest CT series.

    The defaults of the keywords after ``reverse_order`` give the historic phantom; each one
    widens one family (see :func:`dicomnode.synthetic.randomize.random_chest_ct`).

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
        Standard deviation of the image noise.
    reverse_order : bool
        False: slice 1 is the most inferior; True: slice 1 is the most superior.
    kernel : ReconKernel or str
        Noise texture and edge response: ``"none"`` (white noise, ideal edges), ``"soft"``,
        ``"standard"``, ``"sharp"``.
    hu_offset : float
        Calibration error added to every HU (the truth is unchanged).
    pixel_convention : PixelConvention or str
        ``"signed_offset"`` (int16, intercept -1024), ``"signed"`` (int16, intercept 0),
        ``"unsigned"`` (uint16, intercept -1024).
    padding : bool
        Write PixelPaddingValue outside the scan circle (the image's inscribed circle).
    partial_volume : bool
        Average each slice over its thickness (sub-planes at most 1 mm apart): thick slices
        are smoother along z.
    body_scale : float, optional
        In-plane body size (1.0: 330 mm wide); default: fit the field of view, at most 1.0.
    body_aspect : float
        Antero-posterior over lateral size, relative to the default outline.
    lung_scale : float
        Lung cross-section size relative to the body.
    diaphragm_shift_mm : float
        Raises (positive) or lowers the lung bases.
    vessels : bool
        Paint branching pulmonary vessel trees (+40 HU) inside the lungs.
    airways : bool
        Paint the trachea, the main bronchi and a bronchus (air lumen, soft-tissue wall)
        beside each larger artery (:mod:`dicomnode.synthetic._ct_airways`).
    mix : NoduleMix, optional
        Probabilities of ground-glass, lobulated, spiculated, juxtapleural and juxtavascular
        random nodules; default none of them.
    pose : RigidPose, optional
        Move the whole anatomy (body, lungs, nodules) by this rigid pose before scanning, as a
        patient lying slightly differently at a follow-up visit; the truth follows it.
    days_later : int
        Make the study a follow-up of the same patient this many days later (new study,
        series and instance UIDs and frame of reference; see ``make_study_header``).

    Returns
    -------
    ChestCT
    """
    geometry = _geometry(
        shape, pixel_spacing_mm, slice_spacing_mm, slice_thickness_mm, reverse_order
    )
    phantom = _phantom(geometry, body_scale, body_aspect, lung_scale, diaphragm_shift_mm)
    tubes = vessel_tree(rng_for(seed, "ct", "vessels"), phantom) if vessels else []
    bronchi = airway_tree(rng_for(seed, "ct", "airways"), phantom, tubes) if airways else []
    if nodules is None:
        lo, hi = diameter_range_mm
        if not 3.0 <= lo <= hi <= 30.0:
            raise ValueError(f"diameter_range_mm must lie within 3–30 mm, got {diameter_range_mm}")
        if n_nodules < 0:
            raise ValueError(f"n_nodules must be >= 0, got {n_nodules}")
        rngs = (rng_for(seed, "ct", "nodules"), rng_for(seed, "ct", "nodule-families"))
        nodules = random_nodules(
            rngs,
            phantom,
            geometry,
            n_nodules,
            (lo, hi),
            part_solid_probability,
            mix or NoduleMix(),
            tubes,
        )
    truth = [nodule_truth(spec, geometry) for spec in nodules]
    bodies = [
        nodule_body(nodule, rng_for(seed, "ct", "nodule-shape", index))
        for index, nodule in enumerate(truth)
    ]
    scanner = _Scanner(
        noise_hu,
        ReconKernel(kernel),
        hu_offset,
        PixelConvention(pixel_convention),
        padding,
        partial_volume,
    )
    volume = _render(seed, phantom, geometry, bodies, (tubes, bronchi), scanner, pose)
    datasets = _datasets(seed, volume, geometry, scanner, days_later)
    if pose is not None:
        truth = [
            nodule_truth(replace(spec, centre_mm=pose.apply(spec.centre_mm)), geometry)
            for spec in nodules
        ]
    return ChestCT(datasets, truth, geometry, volume, tubes, bronchi)


CHEST_CENTRE_MM = (0.0, 0.0, -150.0)
"""Patient coordinate of the centre of every generated chest CT volume."""


def _geometry(
    shape: tuple[int, int, int],
    pixel_spacing_mm: float | None,
    slice_spacing_mm: float | None,
    slice_thickness_mm: float | None,
    reverse_order: bool,
) -> VolumeGeometry:
    rows, columns, slices = shape
    spacing = _spacing(shape, pixel_spacing_mm, slice_spacing_mm, slice_thickness_mm)
    return axial_geometry(
        (slices, rows, columns),
        pixel_spacing_mm=spacing[0],
        slice_spacing_mm=spacing[1],
        slice_thickness_mm=spacing[2],
        centre_mm=CHEST_CENTRE_MM,
        reverse_order=reverse_order,
    )


def nodule_sites(
    seed: int, shape: tuple[int, int, int], count: int, diameter_mm: float
) -> list[tuple[float, float, float]]:
    """Centres (mm) of ``count`` free solid nodules of up to ``diameter_mm`` that fit in the
    lungs of the default chest of ``shape`` (for nodules placed by the caller, e.g. the
    follow-up pairs of :mod:`dicomnode.synthetic.followup`)."""
    geometry = _geometry(shape, None, None, None, False)
    phantom = _phantom(geometry, None, 1.0, 1.0, 0.0)
    rngs = (rng_for(seed, "ct", "sites"), rng_for(seed, "ct", "site-families"))
    specs = random_nodules(
        rngs, phantom, geometry, count, (diameter_mm, diameter_mm), 0.0, NoduleMix(), []
    )
    return [spec.centre_mm for spec in specs]


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


def _phantom(
    geometry: VolumeGeometry,
    body_scale: float | None,
    aspect: float,
    lung_scale: float,
    diaphragm_shift: float,
) -> ChestPhantom:
    slices, rows, columns = geometry.shape
    half_width = min(rows, columns) * geometry.pixel_spacing_mm[0] / 2
    scale = min(1.0, 0.95 * half_width / 165.0) if body_scale is None else body_scale
    _, _, z = axis_coordinates(geometry)
    coverage = float(abs(z[-1] - z[0]))
    length = min(260.0, max(60.0, 0.9 * coverage))
    centre = float(z.mean())
    if not (0.5 <= scale <= 1.5 and 0.6 <= aspect <= 1.5 and 0.6 <= lung_scale <= 1.15):
        raise ValueError(
            f"body_scale 0.5–1.5, body_aspect 0.6–1.5 and lung_scale 0.6–1.15 required, got "
            f"{scale}, {aspect}, {lung_scale}"
        )
    if not abs(diaphragm_shift) <= 0.4 * length:
        raise ValueError(
            f"diaphragm_shift_mm must lie within ±{0.4 * length:g}, got {diaphragm_shift}"
        )
    bottom = centre - length / 2 + diaphragm_shift
    return ChestPhantom(scale, bottom, centre + length / 2, aspect, lung_scale)


def _render(
    seed: int,
    phantom: ChestPhantom,
    geometry: VolumeGeometry,
    bodies: list[NoduleBody],
    tubes: tuple[list[Tube], list[Airway]],
    scanner: _Scanner,
    pose: RigidPose | None = None,
) -> np.ndarray:
    """Render the volume slice by slice (vectorised in-plane) and return int16 HU; ``tubes``
    are the vessels and the airways; with a ``pose``, the noise-free image is moved by it
    before the kernel and the noise."""
    x, y, z = axis_coordinates(geometry)
    xs, ys = x[None, :].astype(np.float32), y[:, None].astype(np.float32)
    fields = lung_texture_fields(rng_for(seed, "ct", "texture"), xs, ys)
    ramp = float(min(geometry.pixel_spacing_mm))
    thickness = geometry.slice_thickness_mm
    planes = max(1, int(np.ceil(thickness))) if scanner.partial_volume else 1
    offsets = ((np.arange(planes) + 0.5) / planes - 0.5) * thickness
    image = np.empty(geometry.shape, np.float32)
    # Render from the feet up whatever the stacking order, so that reverse_order only flips it.
    order = np.argsort(z, kind="stable")
    for k in order:
        image[k] = _plane(phantom, (x, y, float(z[k] + offsets[0])), fields, bodies, tubes, ramp)
        for offset in offsets[1:]:
            image[k] += _plane(phantom, (x, y, float(z[k] + offset)), fields, bodies, tubes, ramp)
        if planes > 1:
            image[k] /= np.float32(planes)
    if pose is not None:
        image = repose_volume(image, geometry, pose, fill=float(TISSUE_HU[Tissue.AIR]))
    edge_response(image, scanner.kernel, ramp)
    noise_rng = rng_for(seed, "ct", "noise")
    volume = np.empty(geometry.shape, np.int16)
    outside = _outside_scan_circle(x, y) if scanner.padding else None
    for k in order:
        hu = image[k]
        noise = shape_noise(noise_rng.standard_normal(hu.shape, dtype=np.float32), scanner.kernel)
        hu += noise * np.float32(scanner.noise_hu)
        if scanner.hu_offset:
            hu += np.float32(scanner.hu_offset)
        np.clip(np.rint(hu), -1024, 3071, out=hu)
        volume[k] = hu
        if outside is not None:
            volume[k][outside] = padding_hu(scanner.convention)
    return volume


def _plane(
    phantom: ChestPhantom,
    axes: tuple[np.ndarray, np.ndarray, float],
    fields: tuple[list[np.ndarray], list[np.ndarray], np.ndarray],
    bodies: list[NoduleBody],
    tubes: tuple[list[Tube], list[Airway]],
    ramp: float,
) -> np.ndarray:
    """The noise-free HU of the plane at height ``axes[2]``."""
    x, y, zk = axes
    labels = phantom.labels(x[None, :].astype(np.float32), y[:, None].astype(np.float32), zk)
    hu = TISSUE_HU[labels]
    cos_fields, sin_fields, kz = fields
    texture = sum(
        c * np.float32(np.cos(f * zk)) - s * np.float32(np.sin(f * zk))
        for c, s, f in zip(cos_fields, sin_fields, kz, strict=True)
    )
    lung = labels == Tissue.LUNG
    hu[lung] += np.asarray(texture, np.float32)[lung]
    vessels, airways = tubes
    if vessels or airways:
        inside = lung.astype(np.float32)
        for tube in vessels:
            paint_tube(hu, tube, BLOOD_HU, axes, ramp, inside)
        for airway in airways:
            paint_airway(hu, airway, axes, ramp, inside)
    for body in bodies:
        for centre, radius in body.balls:
            paint_ball(hu, centre, radius, body.outer_hu, axes, ramp)
        for spicule in body.spicules:
            paint_tube(hu, spicule, body.outer_hu, axes, ramp)
        if body.core is not None:
            paint_ball(hu, body.core[0], body.core[1], CORE_HU, axes, ramp)
    return hu


def _outside_scan_circle(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    radius = min(float(np.ptp(x)), float(np.ptp(y))) / 2
    return (x[None, :] - x.mean()) ** 2 + (y[:, None] - y.mean()) ** 2 > radius**2


def _datasets(
    seed: int, volume: np.ndarray, geometry: VolumeGeometry, scanner: _Scanner, days_later: int = 0
) -> list[Dataset]:
    study = make_study_header(
        seed, "CT", description="CT CHEST WITHOUT CONTRAST", days_later=days_later
    )
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
        _ct_acquisition(ds, field_of_view, scanner.kernel)
        stored, intercept = encode(volume[k], scanner.convention)
        set_pixel_data(ds, stored, bits_stored=16)
        if scanner.padding:
            ds.PixelPaddingValue = padding_value(scanner.convention)
        ds.RescaleIntercept = str(intercept)
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = ["-600", "40"]
        ds.WindowWidth = ["1500", "400"]
        ds.WindowCenterWidthExplanation = ["LUNG", "MEDIASTINUM"]
        datasets.append(ds)
    return datasets


def _ct_acquisition(ds: Dataset, field_of_view: float, kernel: ReconKernel) -> None:
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
    ds.ConvolutionKernel = "LUNG" if kernel is ReconKernel.NONE else kernel.value.upper()
    ds.RevolutionTime = 0.5
    ds.SingleCollimationWidth = 0.625
    ds.TotalCollimationWidth = 40.0
    ds.TableSpeed = 80.0
    ds.TableFeedPerRotation = 40.0
    ds.SpiralPitchFactor = 1.0
