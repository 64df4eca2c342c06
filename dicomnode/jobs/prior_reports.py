"""Our own earlier reports of a prior study: which the source lists, which are ours, the newest.

A pipeline that uses priors may reuse the measurements of the SR the node made of a prior
series earlier, and reference it, instead of re-running on the prior
(:attr:`~dicomnode.pipeline.contract.PriorInput.reports`). The source is asked by C-FIND at
SERIES level in the prior study for its SR series (:func:`report_query`); those whose Series
Description names another pipeline are left out before anything is retrieved
(:func:`may_be_ours`; a source need not support Manufacturer as a SERIES key, so it is not
asked). After retrieval each file is checked (:func:`read_report`): an SR, Manufacturer
``dicomnode``, Software Versions naming the same pipeline, of the prior study; it is a report
of the prior series its Current Requested Procedure Evidence references. Of several, the
newest by Content Date and Time is used (:func:`newest_for`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from dicomnode.results.common import MANUFACTURER

__all__ = [
    "MAX_REPORT_SERIES",
    "Report",
    "may_be_ours",
    "newest_for",
    "read_report",
    "report_query",
]

log = logging.getLogger(__name__)

#: At most this many SR series of one prior study are retrieved (the newest listed first).
MAX_REPORT_SERIES = 5
#: SR Storage SOP classes all share this root (PS3.4 B.5: 1.2.840.10008.5.1.4.1.1.88.x).
_SR_CLASS_ROOT = "1.2.840.10008.5.1.4.1.1.88."
#: Our Series Description keeps at least this many characters of "<pipeline> <version> SR"
#: before its label (:meth:`~dicomnode.results.common.EncodingContext.series_description`).
_DESCRIPTION_HEAD = 33


@dataclass(frozen=True)
class Report:
    """One of our SR documents of a prior study, as stored here.

    Attributes
    ----------
    path : Path
        The stored file.
    sop_instance_uid : str
        Its SOP Instance UID.
    series_uids : frozenset of str
        The prior study's series it reports on (its Current Requested Procedure Evidence).
    created : str
        Content Date and Time (``YYYYMMDDhhmmss...``), to choose the newest.
    """

    path: Path
    sop_instance_uid: str
    series_uids: frozenset[str]
    created: str


def report_query(study_uid: str) -> Dataset:
    """The SERIES-level C-FIND identifier for the SR series of ``study_uid``."""
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = study_uid
    query.Modality = "SR"
    for key in (
        "SeriesInstanceUID",
        "SeriesDescription",
        "SeriesDate",
        "SeriesTime",
        "NumberOfSeriesRelatedInstances",
    ):
        setattr(query, key, None)
    return query


def may_be_ours(answers: Iterable[Dataset], pipeline: str) -> list[Dataset]:
    """The answers that may be SR series of ``pipeline``, newest listed first, at most
    :data:`MAX_REPORT_SERIES`.

    Kept: Modality SR (a source may ignore the Modality key) and a Series Description that
    starts with the pipeline's name, or none at all (the file is checked after retrieval).
    """
    head = f"{pipeline} "[:_DESCRIPTION_HEAD]
    kept = []
    for answer in answers:
        if str(answer.get("Modality") or "").strip().upper() != "SR":
            continue
        if not str(answer.get("SeriesInstanceUID") or ""):
            continue
        description = str(answer.get("SeriesDescription") or "").strip()
        if description and not description.startswith(head):
            continue
        kept.append(answer)
    kept.sort(key=lambda a: f"{a.get('SeriesDate') or ''}{a.get('SeriesTime') or ''}", reverse=True)
    return kept[:MAX_REPORT_SERIES]


def read_report(path: Path, *, pipeline: str, study_uid: str) -> Report | None:
    """``path`` as our report of ``study_uid`` made by ``pipeline``; None when it is not one
    (another maker, another pipeline, another study, not an SR, unreadable)."""
    try:
        ds = dcmread(path, stop_before_pixels=True)
    except (OSError, InvalidDicomError, ValueError) as exc:
        log.warning("prior report unreadable (%s)", type(exc).__name__)
        return None
    if not str(ds.get("SOPClassUID", "")).startswith(_SR_CLASS_ROOT):
        return None
    if str(ds.get("Manufacturer") or "") != MANUFACTURER:
        return None
    if str(ds.get("StudyInstanceUID") or "") != study_uid:
        return None
    software = ds.get("SoftwareVersions") or ""
    first = str(software if isinstance(software, str) else next(iter(software), ""))
    if not first.startswith(f"{pipeline} "[:64]):
        return None
    series = frozenset(
        str(item.get("SeriesInstanceUID") or "")
        for study in ds.get("CurrentRequestedProcedureEvidenceSequence") or []
        if str(study.get("StudyInstanceUID") or "") == study_uid
        for item in study.get("ReferencedSeriesSequence") or []
    )
    created = f"{ds.get('ContentDate') or ''}{ds.get('ContentTime') or ''}"
    return Report(path, str(ds.SOPInstanceUID), series - {""}, created)


def newest_for(reports: Iterable[Report], series_uid: str) -> Report | None:
    """The newest of ``reports`` that reports on ``series_uid`` (None when none does)."""
    mine = [r for r in reports if series_uid in r.series_uids]
    return max(mine, key=lambda r: r.created) if mine else None
