"""Synthetic brain MR: an axial FLAIR series, or a BraTS-style T1/T1c/T2/FLAIR study."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from dicomnode.synthetic._brain import (
    _SIGNAL,
    BrainAnatomy,
    BrainTissue,
    LesionSpec,
    MRSequence,
    brain_labels,
    paint_lesions,
    place_lesions,
    render_sequence,
    tissue_texture,
)
from dicomnode.synthetic._brain_domain import (
    FlairVariation,
    LesionPlacement,
    Orientation,
    add_fat,
    oriented_geometry,
    place_varied_lesions,
    render_varied_flair,
    voxel_coordinates,
)
from dicomnode.synthetic.common import (
    Equipment,
    StudyHeader,
    axial_geometry,
    axis_coordinates,
    base_dataset,
    make_series_header,
    make_study_header,
    rng_for,
    set_image_plane,
    set_pixel_data,
)
from dicomnode.synthetic.pose import RigidPose
from dicomnode.synthetic.truth import Lesion, VolumeGeometry

__all__ = [
    "MR_IMAGE_STORAGE",
    "BrainAnatomy",
    "BrainMR",
    "BrainTissue",
    "FlairVariation",
    "LesionPlacement",
    "LesionSpec",
    "MRSequence",
    "Orientation",
    "brain_mr",
    "brats_study",
]

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
_EQUIPMENT = Equipment(
    manufacturer="DICOMNODE SYNTHETIC",
    model="PHANTOM MR 3T",
    station_name="SYNMR01",
    serial_number="MR0001",
)
_HEAD_CENTRE_Z = 40.0


@dataclass(frozen=True)
class _Protocol:
    series_number: int
    description: str
    scanning_sequence: tuple[str, ...]
    sequence_variant: tuple[str, ...]
    scan_options: tuple[str, ...]
    repetition_time: float
    echo_time: float
    inversion_time: float | None
    echo_train_length: int
    flip_angle: float
    sequence_name: str
    window: tuple[int, int]


_PROTOCOLS: dict[MRSequence, _Protocol] = {
    MRSequence.T1: _Protocol(
        3, "AX T1 SE", ("SE",), ("SP",), (), 550, 10, None, 1, 90, "*se2d1", (500, 1000)
    ),
    MRSequence.T2: _Protocol(
        4, "AX T2 TSE", ("SE",), ("SK", "SP"), (), 5000, 100, None, 15, 150, "*tse2d1_15",
        (800, 1600),
    ),
    MRSequence.FLAIR: _Protocol(
        5, "AX T2 FLAIR", ("SE", "IR"), ("SK", "SP", "MP"), (), 9000, 125, 2500, 16, 150,
        "*tir2d1_16", (500, 1000),
    ),
    MRSequence.T1C: _Protocol(
        6, "AX T1 SE +C", ("SE",), ("SP",), (), 550, 10, None, 1, 90, "*se2d1", (550, 1100)
    ),
}  # fmt: skip


@dataclass
class BrainMR:
    """A generated brain MR study and its ground truth.

    Attributes
    ----------
    series : dict of MRSequence to list of Dataset
        One series per contrast, instances ordered by InstanceNumber (= slice index + 1).
    lesions : list of Lesion
        The lesions, with their volume in mL.
    labels : numpy.ndarray
        uint16 ``[k, j, i]``: 0 outside lesions, ``n`` on lesion ``n`` (same grid as every series).
    tissue : numpy.ndarray
        uint8 ``[k, j, i]`` tissue labels (:class:`BrainTissue`).
    geometry : VolumeGeometry
        Shared geometry of the series.
    volumes : dict of MRSequence to numpy.ndarray
        The stored pixel values (uint16) of each series.
    variation : FlairVariation, optional
        The domain families the study was drawn with (None: the original phantom).
    """

    series: dict[MRSequence, list[Dataset]]
    lesions: list[Lesion]
    labels: np.ndarray
    tissue: np.ndarray
    geometry: VolumeGeometry
    volumes: dict[MRSequence, np.ndarray]
    variation: FlairVariation | None = None

    @property
    def datasets(self) -> list[Dataset]:
        """Every instance of the study, series by series."""
        return [ds for sequence in self.series for ds in self.series[sequence]]

    @property
    def lesion_mask(self) -> np.ndarray:
        """Boolean ``[k, j, i]`` mask of all lesions."""
        return self.labels > 0

    def slice_order(self, sop_instance_uids: Sequence[str]) -> list[int]:
        """The ground truth's slice indices (``k`` of :attr:`labels`, :attr:`tissue`) of the
        instances ``sop_instance_uids``, in their order.

        A reader sorts slices along the normal; a study stored in reverse (``reverse_order``)
        then has its slices the other way round from the truth arrays. Indexing a truth array
        with this list puts it in the reader's order.

        Raises
        ------
        KeyError
            When a UID is not an instance of this study.
        """
        slot = {
            str(ds.SOPInstanceUID): k for part in self.series.values() for k, ds in enumerate(part)
        }
        return [slot[uid] for uid in sop_instance_uids]


def brain_mr(
    seed: int = 0,
    *,
    shape: tuple[int, int, int] = (96, 96, 48),
    sequences: Sequence[MRSequence | str] = (MRSequence.FLAIR,),
    pixel_spacing_mm: float | None = None,
    slice_spacing_mm: float | None = None,
    slice_thickness_mm: float | None = None,
    n_lesions: int = 3,
    radius_range_mm: tuple[float, float] = (3.0, 8.0),
    noise: float = 12.0,
    reverse_order: bool = False,
    variation: FlairVariation | None = None,
    lesions: Sequence[LesionSpec] | None = None,
    pose: RigidPose | None = None,
    days_later: int = 0,
) -> BrainMR:
    """Generate an axial brain MR study (by default one FLAIR series) with lesions.

    Parameters
    ----------
    seed : int
        Same seed and arguments give byte-identical datasets.
    shape : tuple of int
        ``(rows, columns, slices)``, e.g. ``(240, 240, 155)``.
    sequences : sequence of MRSequence or str
        Contrasts to generate, each as its own series on the same grid.
    pixel_spacing_mm : float, optional
        Square pixel spacing; default a 240 mm field of view over the wider side.
    slice_spacing_mm : float, optional
        Default ``150 / slices`` within 1–5 mm.
    slice_thickness_mm : float, optional
        Default the slice spacing.
    n_lesions : int
        Number of lesions (hyperintense on FLAIR and T2) in the white matter.
    radius_range_mm : tuple of float
        Range of the main radius of each lesion.
    noise : float
        Standard deviation of each channel of the (Rician) noise.
    reverse_order : bool
        False: slice 1 is the most inferior; True: the most superior (for other planes: the
        stacking direction reversed).
    variation : FlairVariation, optional
        Domain families (bias field, lesion contrast and sites, fat, head size, plane, stored
        range); FLAIR-only studies. None keeps the original output byte for byte.
    lesions : sequence of LesionSpec, optional
        Explicit spherical lesions instead of ``n_lesions`` random ones (original phantom only).
    pose : RigidPose, optional
        Move the head by this rigid pose (original phantom only): a follow-up visit with the
        patient lying slightly differently; lesion truth is in the moved frame.
    days_later : int
        A follow-up study of the same patient this many days later (see ``make_study_header``).
    """
    rows, columns, slices = shape
    if min(shape) < 1:
        raise ValueError(f"shape must be positive (rows, columns, slices), got {shape}")
    if n_lesions < 0:
        raise ValueError(f"n_lesions must be >= 0, got {n_lesions}")
    if not 0 < radius_range_mm[0] <= radius_range_mm[1]:
        raise ValueError(f"radius_range_mm must be an increasing positive pair: {radius_range_mm}")
    wanted = [MRSequence(value) for value in sequences]
    if not wanted:
        raise ValueError("sequences must name at least one MRSequence")
    pixel = pixel_spacing_mm or 240.0 / max(rows, columns)
    spacing = slice_spacing_mm or min(5.0, max(1.0, 150.0 / slices))
    grid = _Grid((slices, rows, columns), pixel, spacing, slice_thickness_mm or spacing)
    radii = radius_range_mm
    if variation is None:
        # Built from the feet up; reverse_order flips the result, so that only the order changes.
        geometry, tissue, labels, truth, volumes = _original_phantom(
            seed, grid, wanted, n_lesions, radii, noise, lesions, pose
        )
    else:
        if lesions is not None or pose is not None:
            raise ValueError("lesions and pose apply to the original phantom (no variation)")
        if wanted != [MRSequence.FLAIR]:
            raise ValueError(f"variation applies to FLAIR-only studies, got sequences {wanted}")
        geometry, tissue, labels, truth, volumes = _varied_phantom(
            seed, grid, n_lesions, radii, noise, variation
        )
    if reverse_order:
        a, b, c = geometry.slice_direction
        geometry = dataclasses.replace(
            geometry,
            origin_mm=geometry.slice_position(slices - 1),
            slice_direction=(-a or 0.0, -b or 0.0, -c or 0.0),
        )
        tissue, labels = tissue[::-1].copy(), labels[::-1].copy()
        volumes = {sequence: volume[::-1].copy() for sequence, volume in volumes.items()}
        truth = [
            dataclasses.replace(
                lesion,
                centre_index=(
                    lesion.centre_index[0],
                    lesion.centre_index[1],
                    slices - 1 - lesion.centre_index[2],
                ),
            )
            for lesion in truth
        ]
    kind = "MR" if len(volumes) == 1 else "BRATS"
    study = make_study_header(
        seed, kind, description=f"MR BRAIN {' '.join(volumes)}", days_later=days_later
    )
    series = {
        sequence: _series(study, sequence, volume, geometry, variation)
        for sequence, volume in volumes.items()
    }
    return BrainMR(series, truth, labels, tissue, geometry, volumes, variation)


@dataclass(frozen=True)
class _Grid:
    shape: tuple[int, int, int]
    pixel_mm: float
    spacing_mm: float
    thickness_mm: float

    @property
    def head_scale(self) -> float:
        """Size factor of the head that fits the in-plane field of view."""
        return min(1.0, 0.95 * min(self.shape[1:]) * self.pixel_mm / 2 / 95.0)

    def geometry(self, variation: FlairVariation | None) -> VolumeGeometry:
        """The axial stack of the original phantom, or the plane of ``variation``."""
        pixel, spacing, thickness = self.pixel_mm, self.spacing_mm, self.thickness_mm
        centre = (0.0, 0.0, _HEAD_CENTRE_Z)
        if variation is None:
            return axial_geometry(
                self.shape,
                pixel_spacing_mm=pixel,
                slice_spacing_mm=spacing,
                slice_thickness_mm=thickness,
                centre_mm=centre,
            )
        return oriented_geometry(
            self.shape,
            pixel_spacing_mm=pixel,
            slice_spacing_mm=spacing,
            slice_thickness_mm=thickness,
            centre_mm=centre,
            orientation=variation.orientation,
            tilt_deg=variation.tilt_deg,
        )


_Phantom = tuple[VolumeGeometry, np.ndarray, np.ndarray, list[Lesion], dict[MRSequence, np.ndarray]]


def _original_phantom(
    seed: int,
    grid: _Grid,
    wanted: list[MRSequence],
    n_lesions: int,
    radii: tuple[float, float],
    noise: float,
    specs: Sequence[LesionSpec] | None = None,
    pose: RigidPose | None = None,
) -> _Phantom:
    """The axial, fat-free phantom of the original generator (its head moved by ``pose``)."""
    geometry = grid.geometry(None)
    x, y, z = axis_coordinates(geometry)
    coordinates = (x[None, None, :], y[None, :, None], z[:, None, None])
    if pose is not None:  # the anatomy coordinates of every voxel
        points = np.stack(np.broadcast_arrays(*coordinates), axis=-1)
        inverse = np.linalg.inv(pose.matrix)
        moved = points @ inverse[:3, :3].T + inverse[:3, 3]
        coordinates = (moved[..., 0], moved[..., 1], moved[..., 2])
    scale = grid.head_scale
    tissue = brain_labels(*coordinates, scale=scale, centre_z=_HEAD_CENTRE_Z)
    if specs is not None:
        labels, lesions = paint_lesions(specs, tissue, geometry, coordinates)
    else:
        labels, lesions = place_lesions(
            rng_for(seed, "mr", "lesions"),
            tissue,
            geometry,
            coordinates,
            n_lesions,
            (radii[0] * scale, radii[1] * scale),
        )
    texture = tissue_texture(rng_for(seed, "mr", "texture"), tissue.shape)
    volumes = {
        sequence: render_sequence(
            sequence, tissue, coordinates, texture, rng_for(seed, "mr", "noise", sequence), noise
        )
        for sequence in sorted(wanted, key=lambda s: _PROTOCOLS[s].series_number)
    }
    return geometry, tissue, labels, lesions, volumes


def _varied_phantom(
    seed: int,
    grid: _Grid,
    n_lesions: int,
    radii: tuple[float, float],
    noise: float,
    variation: FlairVariation,
) -> _Phantom:
    """A FLAIR phantom in any plane with fat, lesion families, bias field and stored range."""
    geometry = grid.geometry(variation)
    coordinates = voxel_coordinates(geometry)
    scale = grid.head_scale * variation.head_scale
    anatomy = variation.anatomy
    tissue = brain_labels(*coordinates, scale=scale, centre_z=_HEAD_CENTRE_Z, anatomy=anatomy)
    if variation.fat:
        add_fat(tissue, coordinates, scale, _HEAD_CENTRE_Z, anatomy)
    labels, lesions = place_varied_lesions(
        rng_for(seed, "mr", "lesions"), tissue, geometry, coordinates, n_lesions, radii, variation
    )
    texture = tissue_texture(rng_for(seed, "mr", "texture"), tissue.shape)
    volume = render_varied_flair(
        tissue,
        labels,
        geometry,
        coordinates,
        texture,
        _SIGNAL[MRSequence.FLAIR],
        rng_for(seed, "mr", "noise", MRSequence.FLAIR),
        noise,
        variation,
    )
    return geometry, tissue, labels, lesions, {MRSequence.FLAIR: volume}


def brats_study(seed: int = 0, **options: object) -> BrainMR:
    """Generate a BraTS-style study: T1, T1c, T2 and FLAIR series on one grid.

    Keyword arguments are those of :func:`brain_mr` except ``sequences``.
    """
    sequences = (MRSequence.T1C, MRSequence.T1, MRSequence.T2, MRSequence.FLAIR)
    return brain_mr(seed, sequences=sequences, **options)  # type: ignore[arg-type]


def _series(
    study: StudyHeader,
    sequence: MRSequence,
    volume: np.ndarray,
    geometry: VolumeGeometry,
    variation: FlairVariation | None,
) -> list[Dataset]:
    protocol = _PROTOCOLS[sequence]
    header = make_series_header(
        study,
        sequence.value,
        number=protocol.series_number,
        description=protocol.description,
        modality="MR",
        body_part="BRAIN",
        protocol_name=protocol.description,
    )
    datasets = []
    for k in range(geometry.shape[0]):
        ds = base_dataset(
            study, header, _EQUIPMENT, sop_class_uid=MR_IMAGE_STORAGE, instance_number=k + 1
        )
        ds.PatientPosition = "HFS"
        ds.FrameOfReferenceUID = study.frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        ds.AcquisitionNumber = 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        set_image_plane(ds, geometry, k)
        _mr_acquisition(ds, protocol, geometry)
        if sequence is MRSequence.T1C:
            ds.ContrastBolusAgent = "GADOLINIUM"
            ds.ContrastBolusRoute = "IV"
        if variation is None:
            set_pixel_data(ds, volume[k], bits_stored=12)
            ds.WindowCenter, ds.WindowWidth = protocol.window
        else:
            _varied_pixels(ds, volume[k], protocol, variation)
        datasets.append(ds)
    return datasets


def _varied_pixels(
    ds: Dataset, pixels: np.ndarray, protocol: _Protocol, variation: FlairVariation
) -> None:
    """Pixel data in the stored range of ``variation``, RescaleSlope when it is not 1."""
    set_pixel_data(ds, pixels, bits_stored=variation.bits_stored)
    gain = variation.max_value / 4095.0
    ds.WindowCenter, ds.WindowWidth = (round(v * gain) for v in protocol.window)
    if variation.rescale_slope != 1.0:
        ds.RescaleIntercept, ds.RescaleSlope = "0", f"{variation.rescale_slope:.6g}"
        ds.RescaleType = "US"


def _mr_acquisition(ds: Dataset, protocol: _Protocol, geometry: VolumeGeometry) -> None:
    """MR Image module acquisition attributes of a 2-D 3 T protocol."""
    ds.ScanningSequence = list(protocol.scanning_sequence)
    ds.SequenceVariant = list(protocol.sequence_variant)
    ds.ScanOptions = list(protocol.scan_options) if protocol.scan_options else ""
    ds.MRAcquisitionType = "2D"
    ds.SequenceName = protocol.sequence_name
    ds.RepetitionTime = protocol.repetition_time
    ds.EchoTime = protocol.echo_time
    if protocol.inversion_time is not None:
        ds.InversionTime = protocol.inversion_time
    ds.EchoTrainLength = protocol.echo_train_length
    ds.FlipAngle = protocol.flip_angle
    ds.NumberOfAverages = 1
    ds.ImagingFrequency = 123.25
    ds.ImagedNucleus = "1H"
    ds.EchoNumbers = 1
    ds.MagneticFieldStrength = 3.0
    ds.NumberOfPhaseEncodingSteps = geometry.shape[1]
    ds.PercentSampling = 100
    ds.PercentPhaseFieldOfView = 100
    ds.PixelBandwidth = 220
    ds.ReceiveCoilName = "HEAD 32"
    ds.TransmitCoilName = "BODY"
    ds.AcquisitionMatrix = [0, geometry.shape[2], geometry.shape[1], 0]
    ds.InPlanePhaseEncodingDirection = "ROW"
