"""DICOM plumbing shared by the phantom generators: UIDs, common modules, writing."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

__all__ = ["phantom_uid", "base_dataset", "set_pixels", "write"]


def phantom_uid(*parts: object) -> str:
    """A UID derived only from ``parts``: ``2.25.`` and 128 bits of their SHA-256 (a UUID-derived
    UID, PS3.5 B.2; pydicom's ``generate_uid(prefix=None)`` ignores its entropy sources)."""
    digest = hashlib.sha256("\x1f".join(["dicomnode.phantoms", *map(str, parts)]).encode())
    return f"2.25.{int.from_bytes(digest.digest()[:16], 'big')}"


def base_dataset(
    *,
    kind: str,
    seed: int,
    sop_class_uid: str,
    modality: str,
    instance: int,
    series_number: int,
    series_description: str,
    implicit: bool = False,
) -> Dataset:
    """Patient, study, series, equipment and SOP common modules of one instance."""
    rng = np.random.default_rng([seed, 77])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(phantom_uid(kind, seed, series_number, "sop", instance))
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(phantom_uid("implementation"))
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = f"PHANTOM^{kind.upper()}^{seed}"
    ds.PatientID = f"PH{kind[:3].upper()}{seed:06d}"
    ds.PatientBirthDate = f"19{40 + int(rng.integers(0, 50)):02d}0{1 + int(rng.integers(0, 9))}15"
    ds.PatientSex = "F" if kind == "breast" else ("F", "M")[int(rng.integers(0, 2))]
    ds.StudyInstanceUID = phantom_uid(kind, seed, "study")
    ds.StudyDate = "20260101"
    ds.StudyTime = f"{8 + int(rng.integers(0, 9)):02d}{int(rng.integers(0, 60)):02d}00"
    ds.ReferringPhysicianName = ""
    ds.StudyID = f"{seed % 100000}"
    ds.AccessionNumber = f"PA{seed:08d}"
    ds.StudyDescription = f"Phantom {kind}"
    ds.Modality = modality
    ds.SeriesInstanceUID = phantom_uid(kind, seed, "series", series_number)
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description
    ds.SeriesDate = ds.StudyDate
    ds.Manufacturer = "dicomnode phantoms"
    ds.ManufacturerModelName = "independent phantom family"
    ds.InstanceNumber = instance
    ds.ContentDate = ds.StudyDate
    ds.ContentTime = ds.StudyTime
    return ds


def set_pixels(ds: Dataset, pixels: np.ndarray, *, bits_stored: int, photometric: str) -> None:
    """Image pixel module of a grey-scale ``pixels`` array (int16 signed or uint16)."""
    signed = pixels.dtype == np.int16
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = (int(n) for n in pixels.shape)
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = np.ascontiguousarray(pixels.astype("<i2" if signed else "<u2")).tobytes()


def write(datasets: Sequence[Dataset], folder: Path) -> list[Path]:
    """Write ``datasets`` as ``<n>.dcm`` files in ``folder`` (created); their paths in order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, ds in enumerate(datasets):
        path = folder / f"{n:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
