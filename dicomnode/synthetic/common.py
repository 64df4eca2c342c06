"""Shared header building, deterministic UIDs and random streams, and writing studies to disk.

Everything here is a pure function of the seed: the same seed gives the same UIDs, dates,
names and random numbers, so a generated study is byte-identical from run to run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from dicomnode import __version__
from dicomnode.synthetic.truth import VolumeGeometry

__all__ = [
    "Equipment",
    "axial_geometry",
    "axis_coordinates",
    "set_image_plane",
    "SeriesHeader",
    "StudyHeader",
    "base_dataset",
    "make_series_header",
    "make_study_header",
    "rng_for",
    "set_pixel_data",
    "synthetic_uid",
    "write_study",
]

_NAMESPACE = "dicomnode.synthetic"
IMPLEMENTATION_VERSION_NAME = "DICOMNODE_" + __version__.replace(".", "")[:6]
_BASE_DATE = datetime(2024, 1, 1, 7, 30, 0)


def _digest(*parts: object) -> bytes:
    text = "|".join([_NAMESPACE, *(str(part) for part in parts)])
    return hashlib.sha256(text.encode("utf-8")).digest()


def synthetic_uid(seed: int, *role: object) -> str:
    """Return a repeatable ``2.25.<int>`` UID derived from a hash of ``seed`` and ``role``.

    Parameters
    ----------
    seed : int
        Study seed.
    *role : object
        What the UID identifies, e.g. ``("ct", "series")`` or ``("ct", "instance", 17)``.

    Returns
    -------
    str
        A UID of at most 44 characters (a 128-bit integer under the 2.25 root).
    """
    value = int.from_bytes(_digest("uid", seed, *role)[:16], "big") or 1
    return f"2.25.{value}"


IMPLEMENTATION_CLASS_UID = f"2.25.{int.from_bytes(_digest('implementation')[:16], 'big')}"


def rng_for(seed: int, *role: object) -> np.random.Generator:
    """Return an independent random generator for one purpose (``role``) of a seed.

    Separate streams keep, e.g., the noise unchanged when the number of nodules changes.
    """
    return np.random.default_rng(int.from_bytes(_digest("rng", seed, *role)[:16], "big"))


@dataclass(frozen=True)
class Equipment:
    """General Equipment module values."""

    manufacturer: str
    model: str
    station_name: str
    serial_number: str
    institution: str = "SYNTHETIC HOSPITAL"
    software_versions: str = f"dicomnode-synthetic {__version__}"


@dataclass(frozen=True)
class StudyHeader:
    """Patient and General Study module values shared by every instance of a study."""

    seed: int
    patient_name: str
    patient_id: str
    patient_sex: str
    patient_birth_date: str
    patient_age: str
    study_uid: str
    study_date: str
    study_time: str
    study_id: str
    accession_number: str
    study_description: str
    frame_of_reference_uid: str


@dataclass(frozen=True)
class SeriesHeader:
    """General Series module values."""

    uid: str
    number: int
    description: str
    modality: str
    body_part: str
    protocol_name: str
    time: str


def make_study_header(
    seed: int, kind: str, *, description: str, sex: str | None = None, days_later: int = 0
) -> StudyHeader:
    """Build the study-level header of a synthetic study.

    Parameters
    ----------
    seed : int
        Non-negative study seed.
    kind : str
        Short kind name (``"CT"``, ``"MR"``, ``"MG"``) used in names and UID roles.
    description : str
        StudyDescription.
    sex : {"F", "M", "O"}, optional
        PatientSex; drawn from the seed when not given.
    days_later : int
        A follow-up visit of the same patient (name, ID, birth date, sex) this many days after
        the study of ``seed``: new study, frame of reference, accession; 0 is that study.
    """
    if days_later < 0:
        raise ValueError(f"days_later must be >= 0, got {days_later}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    rng = rng_for(seed, kind, "study-header")
    when = _BASE_DATE + timedelta(days=int(rng.integers(0, 730)), minutes=int(rng.integers(0, 600)))
    age = int(rng.integers(40, 80))
    birth = when.date().replace(year=when.year - age, day=min(when.day, 28))
    sex = sex if sex is not None else ("F" if rng.random() < 0.5 else "M")
    visit: tuple[object, ...] = ("followup", days_later) if days_later else ()
    accession = int.from_bytes(_digest("accession", seed, kind, *visit)[:6], "big") % 10**10
    if days_later:
        when += timedelta(days=days_later)
        age = (when.date() - birth).days * 100 // 36525
    return StudyHeader(
        seed=seed,
        # no component that is also a word of the node's messages ("MR", "CT"): the node
        # redacts every name component from what it prints
        patient_name=f"SYNTHETIC^{kind.upper()}PHANTOM^{seed:04d}",
        patient_id=f"SYN-{kind.upper()}-{seed:04d}",
        patient_sex=sex,
        patient_birth_date=birth.strftime("%Y%m%d"),
        patient_age=f"{age:03d}Y",
        study_uid=synthetic_uid(seed, kind, "study", *visit),
        study_date=when.strftime("%Y%m%d"),
        study_time=when.strftime("%H%M%S"),
        study_id=f"{seed % 10**8}",
        accession_number=f"S{accession:010d}",
        study_description=description,
        frame_of_reference_uid=synthetic_uid(seed, kind, "frame-of-reference", *visit),
    )


def make_series_header(
    study: StudyHeader,
    role: str,
    *,
    number: int,
    description: str,
    modality: str,
    body_part: str,
    protocol_name: str | None = None,
) -> SeriesHeader:
    """Build a series header; ``role`` names the series within the study (UID derivation)."""
    start = datetime.strptime(study.study_date + study.study_time, "%Y%m%d%H%M%S")
    return SeriesHeader(
        uid=synthetic_uid(study.seed, study.study_uid, "series", role),
        number=number,
        description=description,
        modality=modality,
        body_part=body_part,
        protocol_name=protocol_name or description,
        time=(start + timedelta(minutes=2 * number)).strftime("%H%M%S"),
    )


def base_dataset(
    study: StudyHeader,
    series: SeriesHeader,
    equipment: Equipment,
    *,
    sop_class_uid: str,
    instance_number: int,
) -> Dataset:
    """Return a dataset with file meta, Patient, Study, Series, Equipment and SOP Common modules.

    The SOP Instance UID is derived from the series UID and ``instance_number``.
    """
    sop_instance_uid = synthetic_uid(study.seed, series.uid, "instance", instance_number)
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class_uid, sop_instance_uid)
    ds.preamble = b"\x00" * 128
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    ds.InstanceCreationDate = study.study_date
    ds.InstanceCreationTime = series.time
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = study.study_date
    ds.StudyTime = study.study_time
    ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = series.time
    ds.AccessionNumber = study.accession_number
    ds.Modality = series.modality
    ds.Manufacturer = equipment.manufacturer
    ds.InstitutionName = equipment.institution
    ds.ReferringPhysicianName = ""
    ds.StationName = equipment.station_name
    ds.StudyDescription = study.study_description
    ds.SeriesDescription = series.description
    ds.ManufacturerModelName = equipment.model
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = study.patient_birth_date
    ds.PatientSex = study.patient_sex
    ds.PatientAge = study.patient_age
    ds.PatientIdentityRemoved = "NO"
    ds.BodyPartExamined = series.body_part
    ds.DeviceSerialNumber = equipment.serial_number
    ds.SoftwareVersions = equipment.software_versions
    ds.ProtocolName = series.protocol_name
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = series.uid
    ds.StudyID = study.study_id
    ds.SeriesNumber = series.number
    ds.InstanceNumber = instance_number
    return ds


def _file_meta(sop_class_uid: str, sop_instance_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta


def set_pixel_data(
    ds: Dataset,
    pixels: np.ndarray,
    *,
    bits_stored: int,
    photometric: str = "MONOCHROME2",
) -> None:
    """Set the Image Pixel module of a single-frame grayscale image from a 2-D array.

    Parameters
    ----------
    ds : Dataset
        Dataset to update.
    pixels : numpy.ndarray
        2-D ``int16`` (signed) or ``uint16`` (unsigned) array; written little endian.
    bits_stored : int
        BitsStored (HighBit is one less); the values must fit.
    photometric : {"MONOCHROME1", "MONOCHROME2"}
        PhotometricInterpretation.
    """
    if pixels.ndim != 2 or pixels.dtype not in (np.int16, np.uint16):
        raise ValueError(f"pixels must be a 2-D int16 or uint16 array, got {pixels.dtype}")
    if not 1 <= bits_stored <= 16:
        raise ValueError(f"bits_stored must lie in 1..16, got {bits_stored}")
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = (int(n) for n in pixels.shape)
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<")).tobytes()


def _file_name(ds: Dataset, shuffle_names: bool) -> str:
    if shuffle_names:
        return hashlib.sha256(str(ds.SOPInstanceUID).encode("ascii")).hexdigest()[:20] + ".dcm"
    return f"{ds.Modality}_{int(ds.SeriesNumber):03d}_{int(ds.InstanceNumber):05d}.dcm"


def write_study(
    datasets: Iterable[Dataset], out_dir: str | Path, *, shuffle_names: bool = False
) -> list[Path]:
    """Write datasets as DICOM files (preamble, file meta, Explicit VR Little Endian).

    Parameters
    ----------
    datasets : iterable of Dataset
        Datasets built by this package (they carry their file meta).
    out_dir : str or Path
        Directory; created when missing.
    shuffle_names : bool
        When True, file names are a hash of the SOP Instance UID, so that sorting the names does
        not give the slice order; otherwise ``<Modality>_<series>_<instance>.dcm``.

    Returns
    -------
    list of Path
        The written files, in the order of ``datasets``.
    """
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for ds in datasets:
        if ds.file_meta.TransferSyntaxUID != ExplicitVRLittleEndian:
            raise ValueError("write_study writes Explicit VR Little Endian datasets only")
        ds.preamble = b"\x00" * 128
        path = directory / _file_name(ds, shuffle_names)
        dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths


def axial_geometry(
    shape: tuple[int, int, int],
    *,
    pixel_spacing_mm: float,
    slice_spacing_mm: float,
    slice_thickness_mm: float,
    centre_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
    reverse_order: bool = False,
) -> VolumeGeometry:
    """Return the geometry of an axial stack centred on ``centre_mm``.

    Parameters
    ----------
    shape : tuple of int
        ``(slices, rows, columns)``.
    pixel_spacing_mm, slice_spacing_mm, slice_thickness_mm : float
        Square in-plane pixel spacing, slice distance and nominal thickness (mm, positive).
    centre_mm : tuple of float
        Patient coordinate of the centre of the volume.
    reverse_order : bool
        False: slice index ``k`` grows toward the head (+z); True: toward the feet (-z).
    """
    slices, rows, columns = shape
    if min(shape) < 1:
        raise ValueError(f"shape must be positive, got {shape}")
    for name, value in (
        ("pixel_spacing_mm", pixel_spacing_mm),
        ("slice_spacing_mm", slice_spacing_mm),
        ("slice_thickness_mm", slice_thickness_mm),
    ):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
    direction = -1.0 if reverse_order else 1.0
    origin = (
        centre_mm[0] - (columns - 1) / 2 * pixel_spacing_mm,
        centre_mm[1] - (rows - 1) / 2 * pixel_spacing_mm,
        centre_mm[2] - direction * (slices - 1) / 2 * slice_spacing_mm,
    )
    return VolumeGeometry(
        shape=(slices, rows, columns),
        origin_mm=origin,
        row_direction=(1.0, 0.0, 0.0),
        column_direction=(0.0, 1.0, 0.0),
        slice_direction=(0.0, 0.0, direction),
        pixel_spacing_mm=(pixel_spacing_mm, pixel_spacing_mm),
        slice_spacing_mm=slice_spacing_mm,
        slice_thickness_mm=slice_thickness_mm,
    )


def axis_coordinates(geometry: VolumeGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the x of each column, y of each row and z of each slice of an axial geometry."""
    slices, rows, columns = geometry.shape
    x0, y0, z0 = geometry.origin_mm
    dy, dx = geometry.pixel_spacing_mm
    x = x0 + geometry.row_direction[0] * dx * np.arange(columns)
    y = y0 + geometry.column_direction[1] * dy * np.arange(rows)
    z = z0 + geometry.slice_direction[2] * geometry.slice_spacing_mm * np.arange(slices)
    return x, y, z


def set_image_plane(ds: Dataset, geometry: VolumeGeometry, k: int) -> None:
    """Set the Image Plane module (and SliceLocation) of slice ``k`` of ``geometry``."""
    position = geometry.slice_position(k)
    ds.PixelSpacing = [_ds_number(value) for value in geometry.pixel_spacing_mm]
    ds.ImageOrientationPatient = [_ds_number(value) for value in geometry.image_orientation]
    ds.ImagePositionPatient = [_ds_number(value) for value in position]
    ds.SliceThickness = _ds_number(geometry.slice_thickness_mm)
    ds.SpacingBetweenSlices = _ds_number(geometry.slice_spacing_mm)
    ds.SliceLocation = _ds_number(
        float(np.dot(position, np.cross(geometry.row_direction, geometry.column_direction)))
    )


def _ds_number(value: float) -> str:
    """Format a float as a DS string of at most 16 characters, without a negative zero."""
    text = f"{round(value, 6):.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
