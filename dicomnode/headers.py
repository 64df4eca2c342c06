"""Reading the headers of a series' instances: one rule, one exception policy.

Every reader of a series' header facts goes through this module: ``dicomnode route explain``
(:func:`dicomnode.routing.scan`), ``dicomnode run`` (its inputs' Modality and
SeriesDescription, :func:`dicomnode.pipeline.runner.discover_inputs`) and the live node's
completion hook (:class:`dicomnode.jobs.RoutingHook`). So the three see the same header for
the same series, whatever order its instances arrived in or were named on disk.

Rule
    A series is represented by the readable header of its instance with the **lowest
    InstanceNumber**; ties are broken by **SOPInstanceUID**, then by path (two files of the
    same instance on disk). An instance without a usable InstanceNumber (absent, empty, not an
    integer, undecodable) ranks after every numbered one. Arrival order and file names never
    matter.
Exceptions
    A header that cannot be read (not DICOM, truncated, a value or nesting pydicom cannot
    parse) is skipped and the next instance is tried. The log names the exception's type only,
    never its message: pydicom's messages can quote element values, i.e. patient data.

A leaf module (pydicom only), like :mod:`dicomnode.phi`: the boxes that read series import
it, and it imports none of them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom import Dataset
from pydicom.errors import InvalidDicomError

__all__ = [
    "FoundSeries",
    "InstanceHeader",
    "dicom_files",
    "group_series",
    "read_instance",
    "read_representative",
]

log = logging.getLogger(__name__)

#: Why a file is not used (the :attr:`SkippedFile.reason` of ``route explain``).
NOT_DICOM = "not DICOM"
NO_UIDS = "no SeriesInstanceUID/StudyInstanceUID"


@dataclass(frozen=True)
class InstanceHeader:
    """The header (no pixel data) of one instance, and what ranking and grouping need.

    Parameters
    ----------
    path : Path
        The file.
    dataset : pydicom.Dataset
        The header; kept out of ``repr`` (patient data).
    study_uid, series_uid : str
        StudyInstanceUID and SeriesInstanceUID (never empty).
    sop_uid : str
        SOPInstanceUID ('' when absent).
    number : int, optional
        InstanceNumber; None when absent or unusable.
    """

    path: Path
    dataset: Dataset = field(repr=False, compare=False)
    study_uid: str
    series_uid: str
    sop_uid: str
    number: int | None

    def text(self, keyword: str) -> str:
        """The value of ``keyword`` as stripped text; '' when absent or undecodable."""
        try:
            return str(self.dataset.get(keyword, None) or "").strip()
        except Exception:  # a hostile value: absent, as routing counts it
            return ""

    @property
    def rank(self) -> tuple[bool, int, str, str]:
        """Sort key of the rule (module docstring): the lowest represents the series."""
        return (self.number is None, self.number or 0, self.sop_uid, str(self.path))


def read_instance(path: Path) -> InstanceHeader | str:
    """The header of ``path``, or why it cannot be used (no exception message in it).

    Returns
    -------
    InstanceHeader or str
        The header; else ``"not DICOM"``, ``"unreadable: <ExceptionType>"`` or
        ``"no SeriesInstanceUID/StudyInstanceUID"``.
    """
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        study_uid = str(header.get("StudyInstanceUID") or "").strip()
        series_uid = str(header.get("SeriesInstanceUID") or "").strip()
        sop_uid = str(header.get("SOPInstanceUID") or "").strip()
    except InvalidDicomError:
        log.debug("not a DICOM file, skipped")
        return NOT_DICOM
    except Exception as exc:  # pydicom raises many kinds on hostile input (OSError, EOFError,
        # ValueError, struct.error, NotImplementedError for an unknown VR, RecursionError on
        # deep nesting): a damaged header is skipped, never fatal. The type only (see above).
        log.warning("unreadable header skipped (%s)", type(exc).__name__)
        return f"unreadable: {type(exc).__name__}"
    if not study_uid or not series_uid:
        log.debug("header without series or study UID, skipped")
        return NO_UIDS
    return InstanceHeader(Path(path), header, study_uid, series_uid, sop_uid, _number(header))


def _number(header: Dataset) -> int | None:
    """InstanceNumber, or None when absent, empty, not an integer or undecodable."""
    try:
        value = header.get("InstanceNumber", None)
        return None if value is None or value == "" else int(value)
    except Exception:  # a wrong VR, a multi-value, text: the instance only ranks last
        return None


def read_representative(paths: Iterable[Path]) -> InstanceHeader | None:
    """Read every header of ``paths`` and return the representative one (module rule).

    Unreadable headers are skipped (logged by exception type); None when none is readable.
    """
    best: InstanceHeader | None = None
    for path in paths:
        read = read_instance(path)
        if isinstance(read, InstanceHeader) and (best is None or read.rank < best.rank):
            best = read
    return best


@dataclass
class FoundSeries:
    """The files of one series found on disk, and its representative header."""

    header: InstanceHeader
    files: list[Path] = field(default_factory=list)
    sop_uids: set[str] = field(default_factory=set)
    unnamed: int = 0

    @property
    def instances(self) -> int:
        """Distinct SOPInstanceUIDs, plus files without one."""
        return len(self.sop_uids) + self.unnamed

    def add(self, read: InstanceHeader) -> None:
        """Count ``read``'s file in, and keep its header if it ranks lower."""
        if read.rank < self.header.rank:
            self.header = read
        self.files.append(read.path)
        if read.sop_uid:
            self.sop_uids.add(read.sop_uid)
        else:
            self.unnamed += 1


def dicom_files(path: Path) -> list[Path]:
    """``path`` itself, or the files under it in sorted order (folder links not followed).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    """
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"no such file or folder: {path}")
    found: list[Path] = []
    for folder, dirs, names in os.walk(path):
        dirs.sort()
        found.extend(Path(folder) / name for name in sorted(names))
    return [file for file in found if file.is_file()]


def group_series(path: Path) -> tuple[dict[str, FoundSeries], list[tuple[Path, str]]]:
    """Read the headers of the files under ``path`` and group them by SeriesInstanceUID.

    Returns
    -------
    series : dict of str to FoundSeries
        By SeriesInstanceUID, in the order first found; files in path order.
    skipped : list of (Path, str)
        Files not used and why, in path order.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    """
    series: dict[str, FoundSeries] = {}
    skipped: list[tuple[Path, str]] = []
    for file in dicom_files(Path(path)):
        read = read_instance(file)
        if isinstance(read, str):
            skipped.append((file, read))
            continue
        series.setdefault(read.series_uid, FoundSeries(read)).add(read)
    return series, skipped
