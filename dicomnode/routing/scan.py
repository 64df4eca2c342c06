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


@dataclass(frozen=True)
class _Header:
    """What grouping needs from one file, decoded once."""

    dataset: Dataset
    study_uid: str
    series_uid: str
    sop_uid: str
    number: int


def _read(file: Path) -> _Header | str:
    """The header of ``file``, or why it cannot be used."""
    try:
        header = pydicom.dcmread(file, stop_before_pixels=True)
        study_uid = str(header.get("StudyInstanceUID") or "")
        series_uid = str(header.get("SeriesInstanceUID") or "")
        sop_uid = str(header.get("SOPInstanceUID") or "")
        number = _number(header)
    except InvalidDicomError:
        return "not DICOM"
    except (OSError, EOFError, ValueError, struct.error) as err:
        return f"unreadable: {type(err).__name__}: {err}"
    except Exception as err:  # pydicom raises other kinds too on hostile input (unknown VR,
        # RecursionError on deeply nested sequences): a damaged file is skipped, never fatal
        return f"unreadable: {type(err).__name__}"
    if not series_uid or not study_uid:
        return "no SeriesInstanceUID/StudyInstanceUID"
    return _Header(header, study_uid, series_uid, sop_uid, number)


def _number(header: Dataset) -> int:
    """InstanceNumber, or 0 when absent, not a number or undecodable (a wrong VR, say)."""
    try:
        return int(header.get("InstanceNumber", None) or 0)
    except Exception:  # only picks the representative file: never a reason to skip one
        return 0


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
        read = _read(file)
        if isinstance(read, str):
            skipped.append(SkippedFile(file, read))
            continue
        rank = (read.number, str(file))  # representative: lowest InstanceNumber, first path
        group = groups.get(read.series_uid)
        if group is None:
            group = groups[read.series_uid] = _Group(read.study_uid, read.dataset, rank)
        elif rank < group.rank:
            group.header, group.rank = read.dataset, rank
        if read.sop_uid:
            group.sop_uids.add(read.sop_uid)
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
