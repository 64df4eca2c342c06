"""Reading DICOM files from disk into :class:`SeriesFacts`, one per series (offline).

The header that represents a series and the handling of unreadable files are those of the
live node (:mod:`dicomnode.headers`), so ``route explain`` and the node decide alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from dicomnode.headers import group_series
from dicomnode.routing.facts import SeriesFacts

__all__ = ["Scan", "SkippedFile", "scan"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SkippedFile:
    """A file that is not used: not DICOM, unreadable, or without series/study UIDs.

    ``reason`` names an exception by its type only (its message may quote patient data).
    """

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
    files : dict of str to tuple of Path
        The files of each series (by SeriesInstanceUID), in path order.
    """

    series: list[SeriesFacts]
    skipped: list[SkippedFile] = field(default_factory=list)
    files: dict[str, tuple[Path, ...]] = field(default_factory=dict, repr=False)


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
        header of its representative instance (:mod:`dicomnode.headers`: lowest
        InstanceNumber, ties by SOPInstanceUID), and the files skipped.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    """
    groups, skipped = group_series(Path(path))
    if skipped:
        logger.info("skipped %d files (not DICOM or no series UID)", len(skipped))
    series = [
        SeriesFacts(found.header.study_uid, uid, found.header.dataset, found.instances, calling_ae)
        for uid, found in groups.items()
    ]
    series.sort(key=lambda f: (f.study_uid, f.series_number or 0, f.series_uid))
    return Scan(
        series,
        [SkippedFile(file, reason) for file, reason in skipped],
        {uid: tuple(found.files) for uid, found in groups.items()},
    )
