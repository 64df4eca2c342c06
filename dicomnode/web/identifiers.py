"""Patient identifiers of a stored study, read from one of its instance headers.

The database holds UIDs, states and counts, never patient identifiers; the web app reads
them from the stored files when it shows a study (one header per study, without pixel data,
cached by file). Whoever shows them to an operator records an audit row
(:data:`dicomnode.store.audit.AuditKind.IDENTIFIERS_VIEWED`); they never go to a log.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

__all__ = ["StudyIdentifiers", "read_identifiers"]

_TAGS = ["PatientName", "PatientID", "AccessionNumber", "StudyDate", "StudyDescription"]


@dataclass(frozen=True)
class StudyIdentifiers:
    """What a radiologist names a study by (empty strings where the header has none)."""

    patient_name: str = ""
    patient_id: str = ""
    accession: str = ""
    study_date: dt.date | None = None
    description: str = ""

    def matches(self, text: str) -> bool:
        """Whether ``text`` is part of the patient's name or ID (case-insensitive; ``^`` of a
        DICOM name and spaces count the same)."""
        needle = text.casefold().replace("^", " ").strip()
        names = (self.patient_name.replace("^", " "), self.patient_id)
        return any(needle in value.casefold() for value in names)


def _date(value: object) -> dt.date | None:
    text = str(value or "").strip()
    try:
        return dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return None


@lru_cache(maxsize=8192)
def _read(path: str, mtime_ns: int) -> StudyIdentifiers:
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
    except (OSError, InvalidDicomError, ValueError):
        return StudyIdentifiers()
    return StudyIdentifiers(
        patient_name=str(ds.get("PatientName", "") or ""),
        patient_id=str(ds.get("PatientID", "") or ""),
        accession=str(ds.get("AccessionNumber", "") or ""),
        study_date=_date(ds.get("StudyDate")),
        description=str(ds.get("StudyDescription", "") or ""),
    )


def read_identifiers(path: Path | None) -> StudyIdentifiers:
    """The identifiers in the header of the stored instance at ``path`` (empty when the file
    is gone or unreadable)."""
    if path is None:
        return StudyIdentifiers()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return StudyIdentifiers()
    return _read(str(path), mtime)
