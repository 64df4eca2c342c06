"""Reading DICOM files from disk into :class:`SeriesFacts`, one per series (offline)."""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom import Dataset
from pydicom.errors import InvalidDicomError

from dicomnode.routing.facts import SeriesFacts

__all__ = ["Scan", "SkippedFile", "scan"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SkippedFile:
    """A file that is not used: not DICOM, unreadable, or without series/study UIDs."""

    path: Path
    reason: str


@dataclass(frozen=True)
class Scan:
    """The series found under a path, and the files skipped.

    Parameters
    ----------
    series : list of SeriesFacts
        One per SeriesInstanceUID, ordered by study UID, SeriesNumber, series UID.
    skipped : list of SkippedFile
        Files not used, in path order.
    """

    series: list[SeriesFacts]
    skipped: list[SkippedFile] = field(default_factory=list)


@dataclass
class _Group:
    """The files of one series seen so far."""

    study_uid: str
    header: Dataset
    rank: tuple[int, str]
    sop_uids: set[str] = field(default_factory=set)
    unnamed: int = 0

    @property
    def instances(self) -> int:
        return len(self.sop_uids) + self.unnamed


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"no such file or folder: {path}")
    found: list[Path] = []
    for folder, dirs, names in os.walk(path):
        dirs.sort()
        found.extend(Path(folder) / name for name in sorted(names))
    return [file for file in found if file.is_file()]


def _read(file: Path) -> Dataset | str:
    """The header of ``file``, or why it cannot be used."""
    try:
        header = pydicom.dcmread(file, stop_before_pixels=True)
    except InvalidDicomError:
        return "not DICOM"
    except (OSError, EOFError, ValueError, struct.error) as err:
        return f"unreadable: {type(err).__name__}: {err}"
    if not header.get("SeriesInstanceUID") or not header.get("StudyInstanceUID"):
        return "no SeriesInstanceUID/StudyInstanceUID"
    return header


def _rank(header: Dataset, file: Path) -> tuple[int, str]:
    """Representative instance of a series: the lowest InstanceNumber, then the first path."""
    try:
        number = int(header.get("InstanceNumber", None) or 0)
    except (TypeError, ValueError):
        number = 0
    return (number, str(file))


def scan(path: Path, *, calling_ae: str | None = None) -> Scan:
    """Read the headers of the files under ``path`` and group them by series.

    Parameters
    ----------
    path : Path
        A DICOM file or a folder (searched recursively; symbolic links to folders are not
        followed).
    calling_ae : str, optional
        The AE title to assume as sender (for ``calling_ae`` conditions); None: unknown.

    Returns
    -------
    Scan
        One :class:`SeriesFacts` per series (instances = distinct SOPInstanceUIDs), with the
        header of its lowest-numbered instance, and the files skipped.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    """
    groups: dict[str, _Group] = {}
    skipped: list[SkippedFile] = []
    for file in _files(Path(path)):
        header = _read(file)
        if isinstance(header, str):
            skipped.append(SkippedFile(file, header))
            continue
        series_uid = str(header.SeriesInstanceUID)
        rank = _rank(header, file)
        group = groups.get(series_uid)
        if group is None:
            group = groups[series_uid] = _Group(str(header.StudyInstanceUID), header, rank)
        elif rank < group.rank:
            group.header, group.rank = header, rank
        sop_uid = header.get("SOPInstanceUID")
        if sop_uid:
            group.sop_uids.add(str(sop_uid))
        else:
            group.unnamed += 1
    if skipped:
        logger.info("skipped %d files (not DICOM or no series UID)", len(skipped))
    series = [
        SeriesFacts(group.study_uid, uid, group.header, group.instances, calling_ae)
        for uid, group in groups.items()
    ]
    series.sort(key=lambda f: (f.study_uid, f.series_number or 0, f.series_uid))
    return Scan(series, skipped)
