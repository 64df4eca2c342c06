"""C-FIND SCU (Study Root Query/Retrieve Information Model - FIND) towards a configured source.

Typed results, one association per query, TLS and timeouts as for every SCU of the node
(:mod:`dicomnode.net.peer`). Every failure (no association, a refusal, a failure status, a
timeout, a peer that aborts) is one :class:`~dicomnode.errors.QueryFailed`; the identifiers
of the query and of the answers are never logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
)

from dicomnode.errors import ConfigError, QueryFailed
from dicomnode.net.peer import Peer, keep_responses, no_delay, tls_args

__all__ = [
    "FIND_TRANSFER_SYNTAXES",
    "SeriesCount",
    "StudyFound",
    "find",
    "find_series",
    "find_studies",
    "peer_label",
]

log = logging.getLogger(__name__)

#: Proposed for C-FIND: the uncompressed little-endian syntaxes only (no deflate: a deflated
#: response inflates without bound before any check can run).
FIND_TRANSFER_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]

_SUCCESS = 0x0000
_PENDING = (0xFF00, 0xFF01)


@dataclass(frozen=True)
class SeriesCount:
    """One series of a study as a source lists it.

    Attributes
    ----------
    series_uid : str
        Series Instance UID.
    instances : int or None
        Number of Series Related Instances; None when the source did not give a number.
    """

    series_uid: str
    instances: int | None


@dataclass(frozen=True)
class StudyFound:
    """One study of a patient as a source lists it (newest first from :func:`find_studies`).

    Attributes
    ----------
    study_uid : str
        Study Instance UID.
    study_date : str or None
        StudyDate, ``YYYYMMDD``.
    study_time : str
        StudyTime (may be empty), to order studies of one day.
    """

    study_uid: str
    study_date: str | None
    study_time: str = ""


def peer_label(peer: Peer) -> str:
    """``AE@host:port``: how logs and errors name a peer."""
    return f"{peer.ae_title}@{peer.host}:{peer.port}"


def find_series(
    peer: Peer, study_uid: str, *, calling_ae: str, timeout: float
) -> list[SeriesCount]:
    """Every series ``peer`` holds of the study, with its number of instances.

    One C-FIND at SERIES level (Study Root) with the study's UID, asking for Series Instance
    UID and Number of Series Related Instances.

    Parameters
    ----------
    peer : Peer
        The source (``calling_ae_title`` and ``tls`` are honoured).
    study_uid : str
        Study Instance UID.
    calling_ae : str
        Our AE title when ``peer.calling_ae_title`` is not set.
    timeout : float
        Seconds for the connection, the association and each response.

    Returns
    -------
    list of SeriesCount
        Empty when the source does not hold the study.

    Raises
    ------
    QueryFailed
        No association, a failure status, no response in time.
    """
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = ""
    query.NumberOfSeriesRelatedInstances = ""
    return [_series_count(found) for found in _find(peer, query, calling_ae, timeout)]


def find_studies(
    peer: Peer,
    patient_id: str,
    *,
    issuer: str | None = None,
    dates: str = "",
    calling_ae: str,
    timeout: float,
) -> list[StudyFound]:
    """The studies ``peer`` holds of a patient, newest first.

    One C-FIND at STUDY level (Study Root) by PatientID, and IssuerOfPatientID when given
    (the same ID from another issuer is another patient).

    Parameters
    ----------
    peer : Peer
        The source.
    patient_id : str
        PatientID (matched exactly: wildcards are escaped by refusing them).
    issuer : str, optional
        IssuerOfPatientID.
    dates : str
        StudyDate range matching, e.g. ``20210101-20260101`` (empty: any date).
    calling_ae : str
        Our AE title when ``peer.calling_ae_title`` is not set.
    timeout : float
        Seconds for the connection, the association and each response.

    Raises
    ------
    QueryFailed
        No association, a failure status, no response in time; a PatientID with wildcards.
    """
    if not patient_id or any(c in patient_id for c in "*?\\"):
        raise QueryFailed(peer_label(peer), "no usable PatientID (empty, or a wildcard)")
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientID = patient_id
    if issuer:
        query.IssuerOfPatientID = issuer
    query.StudyInstanceUID = ""
    query.StudyDate = dates
    query.StudyTime = ""
    studies = [
        StudyFound(
            str(found.get("StudyInstanceUID", "")),
            str(found.get("StudyDate") or "") or None,
            str(found.get("StudyTime") or ""),
        )
        for found in find(peer, query, calling_ae=calling_ae, timeout=timeout)
    ]
    return sorted(
        (s for s in studies if s.study_uid),
        key=lambda s: (s.study_date or "", s.study_time),
        reverse=True,
    )


def find(peer: Peer, query: Dataset, *, calling_ae: str, timeout: float) -> list[Dataset]:
    """Send one Study Root C-FIND; the identifiers of its pending responses.

    Raises
    ------
    QueryFailed
        No association, a failure status, no response in time.
    """
    return _find(peer, query, calling_ae, timeout)


def _series_count(found: Dataset) -> SeriesCount:
    raw = found.get("NumberOfSeriesRelatedInstances")
    try:
        count = int(raw) if raw not in (None, "") else None
    except (TypeError, ValueError):
        count = None
    return SeriesCount(str(found.get("SeriesInstanceUID", "")), count)


def _find(peer: Peer, query: Dataset, calling_ae: str, timeout: float) -> list[Dataset]:
    """Send ``query``; the identifiers of the pending responses (QueryFailed on failure)."""
    label = peer_label(peer)
    ae = AE(ae_title=peer.calling_ae_title or calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = timeout
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind, FIND_TRANSFER_SYNTAXES)
    try:
        tls = tls_args(peer)
    except ConfigError as exc:
        raise QueryFailed(label, str(exc)) from None
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title, tls_args=tls)
    if not assoc.is_established:
        why = "association rejected" if assoc.is_rejected else "no association (source down?)"
        raise QueryFailed(label, why)
    no_delay(assoc)
    keep_responses(assoc)
    found: list[Dataset] = []
    try:
        responses = assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)
        for status, identifier in responses:
            code = int(status.Status) if "Status" in status else None
            if code in _PENDING:
                if identifier is not None:
                    found.append(identifier)
                continue
            if code == _SUCCESS:
                return found
            raise QueryFailed(
                label,
                "no response (timed out, or the source aborted)"
                if code is None
                else f"C-FIND status 0x{code:04X}",
            )
        raise QueryFailed(label, "no final C-FIND response")
    except (RuntimeError, ValueError) as exc:  # context refused, association ended
        raise QueryFailed(label, str(exc)) from None
    finally:
        if assoc.is_established:
            assoc.release()
