"""C-MOVE and C-GET SCU (Study Root Query/Retrieve): priors from a configured source.

One association per series retrieved. C-MOVE asks the source to send the series to the
node's own AE title: the source opens its own association to the node's SCP (it must know the
node as a move destination) and the SCP stores the instances, marked as priors because the
requests name the node as their move originator (:meth:`~dicomnode.net.scp.StorageSCP`). C-GET
(``retrieve: get``) receives them on the query's own association, in the Storage SCP role,
and stores them here with :data:`~dicomnode.store.models.SeriesOrigin.PRIOR`.

A :class:`Retrieval` can be cancelled from another thread (:meth:`Retrieval.cancel` aborts
the open association): the worker bounds a job's priors by ``priors.timeout`` so. Every
failure is a :class:`~dicomnode.errors.QueryFailed`; identifiers are never logged.
"""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)
from pynetdicom import (
    AE,
    AllStoragePresentationContexts,
    StoragePresentationContexts,
    build_role,
    evt,
)
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from dicomnode.dimse import Status
from dicomnode.errors import ConfigError, QueryFailed, StoreRejected
from dicomnode.net.peer import Peer, keep_responses, no_delay, tls_args
from dicomnode.net.query import FIND_TRANSFER_SYNTAXES, peer_label
from dicomnode.store.ingest import Store
from dicomnode.store.models import SeriesOrigin

__all__ = ["GET_STORAGE_SOP_CLASSES", "GET_STORAGE_TRANSFER_SYNTAXES", "Moved", "Retrieval"]

log = logging.getLogger(__name__)

#: Offered for the instances a C-GET returns: uncompressed and lossless compressed (no
#: deflate, as on the SCP).
GET_STORAGE_TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEG2000Lossless,
]

#: Storage SOP classes offered in the SCP role on a C-GET association: pynetdicom's selection
#: of common ones that the Storage SCP also accepts (a C-GET association holds at most 128
#: presentation contexts in all).
GET_STORAGE_SOP_CLASSES = [
    cx.abstract_syntax
    for cx in StoragePresentationContexts
    if cx.abstract_syntax in {a.abstract_syntax for a in AllStoragePresentationContexts}
][:120]

_PENDING = (0xFF00, 0xFF01)
_SUCCESS_OR_WARNING = (0x0000, 0xB000)


@dataclass(frozen=True)
class Moved:
    """The sub-operation counts of a finished C-MOVE or C-GET."""

    completed: int
    failed: int
    warning: int


class Retrieval:
    """Retrievals of one job's priors, one at a time, cancellable from another thread.

    Parameters
    ----------
    calling_ae : str
        Our AE title when a source does not set ``calling_ae_title``.
    """

    def __init__(self, *, calling_ae: str):
        self.calling_ae = calling_ae
        self._assoc: Any = None
        self._lock = threading.Lock()
        self.cancelled = threading.Event()

    def cancel(self) -> None:
        """Abort the open association (if any); later retrievals fail at once."""
        self.cancelled.set()
        with self._lock:
            assoc = self._assoc
        if assoc is not None and assoc.is_established:
            assoc.abort()

    def move(
        self, peer: Peer, study_uid: str, series_uid: str, *, destination: str, timeout: float
    ) -> Moved:
        """C-MOVE one series to ``destination`` (the node's own AE title).

        Returns once the source's final response arrived: by then the node's SCP has answered
        every sub-operation's C-STORE, so the instances are stored.

        Raises
        ------
        QueryFailed
            No association, a failure status, cancelled, no response in time.
        """
        ae = self._ae(peer, timeout)
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove, FIND_TRANSFER_SYNTAXES)
        assoc = self._associate(ae, peer)
        try:
            responses = assoc.send_c_move(
                _identifier(study_uid, series_uid),
                destination,
                StudyRootQueryRetrieveInformationModelMove,
            )
            return _final(peer, responses, "C-MOVE")
        finally:
            self._done(assoc)

    def get(
        self, peer: Peer, study_uid: str, series_uid: str, *, store: Store, timeout: float
    ) -> Moved:
        """C-GET one series; its instances are stored in ``store`` as priors.

        Raises
        ------
        QueryFailed
            No association, a failure status, cancelled, no response in time.
        """
        ae = self._ae(peer, timeout)
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet, FIND_TRANSFER_SYNTAXES)
        roles = []
        for sop_class in GET_STORAGE_SOP_CLASSES:
            assert sop_class is not None
            ae.add_requested_context(sop_class, GET_STORAGE_TRANSFER_SYNTAXES)
            roles.append(build_role(sop_class, scp_role=True))
        label = peer_label(peer)
        handlers = [(evt.EVT_C_STORE, lambda event: _store_prior(event, store, label))]
        assoc = self._associate(ae, peer, ext_neg=roles, evt_handlers=handlers)
        try:
            responses = assoc.send_c_get(
                _identifier(study_uid, series_uid), StudyRootQueryRetrieveInformationModelGet
            )
            return _final(peer, responses, "C-GET")
        finally:
            self._done(assoc)

    def _ae(self, peer: Peer, timeout: float) -> AE:
        if self.cancelled.is_set():
            raise QueryFailed(peer_label(peer), "cancelled (priors.timeout)")
        ae = AE(ae_title=peer.calling_ae_title or self.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = timeout
        return ae

    def _associate(self, ae: AE, peer: Peer, **kwargs: Any) -> Any:
        label = peer_label(peer)
        try:
            tls = tls_args(peer)
        except ConfigError as exc:
            raise QueryFailed(label, str(exc)) from None
        assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title, tls_args=tls, **kwargs)
        if not assoc.is_established:
            why = "association rejected" if assoc.is_rejected else "no association (source down?)"
            raise QueryFailed(label, why)
        no_delay(assoc)
        keep_responses(assoc)
        with self._lock:
            self._assoc = assoc
        if self.cancelled.is_set():
            assoc.abort()
            raise QueryFailed(label, "cancelled (priors.timeout)")
        return assoc

    def _done(self, assoc: Any) -> None:
        with self._lock:
            self._assoc = None
        if assoc.is_established:
            assoc.release()


def _identifier(study_uid: str, series_uid: str) -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = series_uid
    return query


def _count(status: Dataset, keyword: str) -> int:
    value = status.get(keyword)
    try:
        return int(value) if value not in (None, "") else 0
    except (TypeError, ValueError):
        return 0


def _final(peer: Peer, responses: Any, what: str) -> Moved:
    """Read a C-MOVE/C-GET's responses to the final one (QueryFailed unless it succeeded)."""
    label = peer_label(peer)
    try:
        for status, _identifier in responses:
            code = int(status.Status) if "Status" in status else None
            if code in _PENDING:
                continue
            if code in _SUCCESS_OR_WARNING:
                return Moved(
                    _count(status, "NumberOfCompletedSuboperations"),
                    _count(status, "NumberOfFailedSuboperations"),
                    _count(status, "NumberOfWarningSuboperations"),
                )
            raise QueryFailed(
                label,
                "no response (timed out, cancelled, or the source aborted)"
                if code is None
                else f"{what} status 0x{code:04X}",
            )
    except (RuntimeError, ValueError) as exc:  # context refused, association ended
        raise QueryFailed(label, str(exc)) from None
    raise QueryFailed(label, f"no final {what} response")


def _store_prior(event: Any, store: Store, peer: str) -> int:
    """The C-STORE handler of a C-GET association: store the instance as a prior; never
    raises."""
    request = event.request
    spool = store.incoming / f"get-{uuid.uuid4().hex}.part"
    try:
        if event.dataset_path is not None:
            shutil.copyfile(event.dataset_path, spool)
        else:
            spool.write_bytes(event.encoded_dataset())
        store.ingest(
            spool,
            sop_class_uid=str(request.AffectedSOPClassUID or ""),
            sop_instance_uid=str(request.AffectedSOPInstanceUID or ""),
            calling_ae=str(event.assoc.acceptor.ae_title).strip(),
            peer=peer,
            origin=SeriesOrigin.PRIOR,
        )
    except StoreRejected as exc:
        log.warning("prior instance refused", extra={"status": f"0x{exc.status:04X}"})
        return exc.status
    except Exception as exc:
        log.error("prior instance not stored (%s)", type(exc).__name__)
        spool.unlink(missing_ok=True)
        return Status.OUT_OF_RESOURCES
    return Status.SUCCESS
