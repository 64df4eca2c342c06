"""Small, fast DICOM instances for the node's own tests (headers that PACS send)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, MRImageStorage

CANARY_NAME = "CANARY^PHI^NAME"
CANARY_ID = "CANARY-PHI-ID-4711"


def uid(*parts: object) -> str:
    """A repeatable ``2.25`` UID derived from ``parts``."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:15], "big"))


@dataclass(frozen=True)
class SeriesSpec:
    """One series to generate."""

    study_uid: str
    series_uid: str
    count: int
    modality: str = "CT"
    rows: int = 32
    columns: int = 32
    series_number: int = 1


def instance(
    spec: SeriesSpec, index: int, *, sop_uid: str | None = None, value: int = 0
) -> Dataset:
    """Instance ``index`` of ``spec`` as a Part 10 dataset (file meta included)."""
    sop_class = CTImageStorage if spec.modality == "CT" else MRImageStorage
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid or uid(spec.series_uid, index)
    ds.StudyInstanceUID = spec.study_uid
    ds.SeriesInstanceUID = spec.series_uid
    ds.PatientName = CANARY_NAME
    ds.PatientID = CANARY_ID
    ds.PatientBirthDate = "19010101"
    ds.Modality = spec.modality
    ds.SeriesNumber = spec.series_number
    ds.InstanceNumber = index + 1
    ds.SeriesDescription = f"TEST {spec.modality} {spec.series_number}"
    ds.ImagePositionPatient = [0.0, 0.0, float(index)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.SliceThickness = 1.0
    ds.Rows = spec.rows
    ds.Columns = spec.columns
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    pixels = np.full((spec.rows, spec.columns), value + index, dtype=np.int16)
    ds.PixelData = pixels.tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def series(spec: SeriesSpec) -> Iterator[Dataset]:
    """Every instance of ``spec``."""
    for index in range(spec.count):
        yield instance(spec, index)


def write_series(spec: SeriesSpec, directory: Path) -> list[Path]:
    """Write ``spec`` to ``directory`` (created); returns the file paths in order."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, ds in enumerate(series(spec)):
        path = directory / f"{index:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def study(name: str, series_counts: list[int], **kwargs: object) -> list[SeriesSpec]:
    """Specs of a study with one series per entry of ``series_counts``."""
    study_uid = uid(name, "study")
    return [
        SeriesSpec(study_uid, uid(name, "series", n), count, series_number=n + 1, **kwargs)  # type: ignore[arg-type]
        for n, count in enumerate(series_counts)
    ]
