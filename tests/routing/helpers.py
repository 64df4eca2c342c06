"""Helpers of the routing tests: routes from plain dicts, series facts and DICOM files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from dicomnode.routing import Route, SeriesFacts, compile_routes

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
MG_IMAGE = "1.2.840.10008.5.1.4.1.1.1.2"
UID_ROOT = "1.2.826.0.1.3680043.10.999"


def route(when: dict[str, Any] | None = None, **fields: Any) -> Route:
    """One compiled route from a ``when`` mapping (and any other route fields)."""
    spec: dict[str, Any] = {"name": "r", "pipeline": "p", "send_to": ["pacs"], **fields}
    if when is not None:
        spec["when"] = when
    return compile_routes([spec])[0]


def header(**attributes: Any) -> Dataset:
    """A header with the given attributes (by keyword) and default UIDs."""
    ds = Dataset()
    ds.StudyInstanceUID = f"{UID_ROOT}.1"
    ds.SeriesInstanceUID = f"{UID_ROOT}.1.1"
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def facts(*, instances: int = 1, calling_ae: str | None = None, **attributes: Any) -> SeriesFacts:
    """Series facts with a header of the given attributes."""
    return SeriesFacts.from_header(header(**attributes), instances=instances, calling_ae=calling_ae)


def write_series(
    folder: Path,
    *,
    study: str,
    series: str,
    count: int,
    sop_class: str,
    **attributes: Any,
) -> list[Path]:
    """Write ``count`` small instances of one series (no pixel data) under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(1, count + 1):
        ds = Dataset()
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = f"{series}.{number}"
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.InstanceNumber = number
        ds.PatientName = "Doe^Jane"
        ds.PatientID = "PID-SECRET-42"
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(sop_class)
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        path = folder / f"{number:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
