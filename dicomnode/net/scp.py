"""The DICOM listener: Verification and Storage SCP on pynetdicom.

Received datasets are spooled in chunks to ``<store>/.incoming`` (never decoded, never held in
memory) and handed to :class:`~dicomnode.store.ingest.Store`; the C-STORE handler never
raises, it answers a DIMSE status. Deflated transfer syntaxes are refused at negotiation.

The listener is a :class:`~dicomnode.net.server.GuardedServer` (PDU length limits, TLS and
the wait for an association request off the accept loop). The association limit counts only
admitted associations, so idle or half-open sockets cannot lock senders out; every rejected
association, failed TLS handshake and oversized PDU is one ``security.alert`` audit row.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydicom.uid import AllTransferSyntaxes, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, AllStoragePresentationContexts, _config, evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dicomnode.config.schema import NodeConfig, SourceConfig
from dicomnode.dimse import Status
from dicomnode.net import spool
from dicomnode.net.access import Refusal, decide
from dicomnode.net.commitment import STORAGE_COMMITMENT, CommitmentService
from dicomnode.net.mpps import MPPS, MppsService
from dicomnode.net.receive import Receiver, ScpObserver
from dicomnode.net.server import GuardedServer, start_guarded_server
from dicomnode.net.signals import Arrivals, OnSignal, SignalContext
from dicomnode.net.slots import AssociationSlots, LimitReached
from dicomnode.net.tls import server_context
from dicomnode.store.audit import AuditKind
from dicomnode.store.ingest import Store
from dicomnode.store.models import SeriesOrigin
from dicomnode.store.stability import SweepResult

__all__ = [
    "ACCEPTED_TRANSFER_SYNTAXES",
    "SIGNAL_SOP_CLASSES",
    "SIGNAL_TRANSFER_SYNTAXES",
    "VERIFICATION_TRANSFER_SYNTAXES",
    "Delivery",
    "ScpObserver",
    "StorageSCP",
    "configure_pynetdicom",
]

log = logging.getLogger(__name__)

#: Every transfer syntax pydicom knows, except the deflated ones (a deflate bomb inflates a
#: few hundred KB into hundreds of MB before any check can run). The acceptor's order decides
#: when a sender proposes several in one context: uncompressed first, so that the node never
#: asks a sender to compress (perhaps lossily) what it holds uncompressed.
ACCEPTED_TRANSFER_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian] + [
    ts
    for ts in AllTransferSyntaxes
    if not ts.is_deflated
    and "deflate" not in ts.name.lower()
    and ts not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
]

#: A C-ECHO carries no data set: the two uncompressed little-endian syntaxes (no deflate).
VERIFICATION_TRANSFER_SYNTAXES = ACCEPTED_TRANSFER_SYNTAXES[:2]
#: The completion-signal services (Storage Commitment Push Model, MPPS): the same two.
SIGNAL_TRANSFER_SYNTAXES = VERIFICATION_TRANSFER_SYNTAXES
#: The SOP classes of the completion-signal services.
SIGNAL_SOP_CLASSES = [STORAGE_COMMITMENT, MPPS]

_REJECT_PERMANENT = 0x01
_REJECT_TRANSIENT = 0x02
_SOURCE_USER = 0x01
_SOURCE_PROVIDER_PRESENTATION = 0x03
_DIAG_NONE = 0x01
_DIAG_CALLING_AE = 0x03
_DIAG_CALLED_AE = 0x07
_DIAG_LOCAL_LIMIT = 0x02
#: pynetdicom's own association limit counts every connection that sent a byte; the node
#: enforces ``max_associations`` itself on admitted associations and keeps this as a backstop.
_PYNETDICOM_ASSOCIATION_CAP = 1000
#: The PDV message control header bits of the last fragment of a command (PS3.8 E.2).
_COMMAND_LAST = 0x03


@dataclass(frozen=True)
class Delivery:
    """What one released association stored: its studies and series (UIDs).

    Only instances answered with Success count (stored, duplicate or superseded).
    """

    peer: str
    studies: frozenset[str]
    series: frozenset[str]


#: Told about each released association that stored instances; runs on the association's
#: thread, so it must return at once and never raise.
DeliveryCallback = Callable[[Delivery], None]


def configure_pynetdicom(*, log_identifiers: bool = False) -> None:
    """Set pynetdicom's process-wide options the node depends on.

    Chunked receive to a file, and no identifiers (patient name/ID) in pynetdicom's log.
    """
    _config.STORE_RECV_CHUNKED_DATASET = True
    _config.LOG_REQUEST_IDENTIFIERS = log_identifiers
    _config.LOG_RESPONSE_IDENTIFIERS = log_identifiers
    _config.LOG_HANDLER_LEVEL = "none"


def _ignore(done: SweepResult) -> None:
    """The default :data:`OnSignal`: the next stability sweep hands completions on."""


class StorageSCP:
    """The node's SCP: Verification, Storage, Storage Commitment Push Model, MPPS.

    Parameters
    ----------
    config : NodeConfig
        AE title, address, limits, timeouts and allow-list.
    store : Store
        Where received instances go.
    observer : ScpObserver, optional
        Told about associations and stores (metrics).
    sources : mapping of name to SourceConfig, optional
        Known PACS: Storage Commitment results go to the one whose AE title is the
        requester's when the requester closed its association.
    on_signal : OnSignal, optional
        Told about completions a completion signal (commitment, MPPS) made.
    on_released : DeliveryCallback, optional
        Told what each association stored once it is released (C-FIND confirmation against
        the source, :mod:`dicomnode.net.confirm`); not told about aborted associations.
    slots : AssociationSlots, optional
        The association limits' table, shared with the node's other SCP processes (one of
        this SCP's own when not given).
    listening : socket.socket, optional
        A socket bound by the parent of the node's SCP processes, which all accept on it
        (:mod:`dicomnode.net.processes`); when not given, ``config``'s address is bound.
    spool_prefix : str
        Names of this SCP's spool files start with it (its process's own, when several
        processes share the spool folder).
    """

    def __init__(
        self,
        config: NodeConfig,
        store: Store,
        observer: ScpObserver | None = None,
        *,
        sources: Mapping[str, SourceConfig] | None = None,
        on_signal: OnSignal = _ignore,
        on_released: DeliveryCallback | None = None,
        slots: AssociationSlots | None = None,
        listening: socket.socket | None = None,
        spool_prefix: str = spool.SPOOL_PREFIX,
    ):
        self.config = config
        self.store = store
        self.observer = observer or ScpObserver()
        self.sources: Mapping[str, SourceConfig] = dict(sources or {})
        self.arrivals = Arrivals()
        #: the store path C-STORE shares with STOW-RS (logs, audit rows, metrics, arrivals)
        self.receiver = Receiver(store, self.observer, self.arrivals)
        signals = SignalContext(
            store.db, store.root, self.arrivals, on_signal, audit=self._audit_subject
        )
        self.commitment = CommitmentService(
            signals, config=lambda: self.config, sources=lambda: self.sources
        )
        self.mpps = MppsService(signals)
        self.on_released = on_released
        #: (study, series) UIDs stored on each association not ended yet
        self._delivered: dict[Association, set[tuple[str, str]]] = {}
        self._delivered_lock = threading.Lock()
        self._server: GuardedServer | None = None
        self._in_handler: set[str] = set()
        self.slots = slots or AssociationSlots()
        self._listening = listening
        self._admitted: dict[Association, int] = {}  # admitted association -> its slot
        self._admission = threading.Lock()
        #: Accepted associations that have not sent a whole DIMSE command yet, with the timer
        #: that aborts them at ``first_message_timeout``.
        self._silent: dict[Association, threading.Timer] = {}
        self.ae = self._make_ae()
        self.spool = spool.SpoolFolder(store.incoming, prefix=spool_prefix)

    def _make_ae(self) -> AE:
        cfg = self.config
        ae = AE(ae_title=cfg.ae_title)
        ae.maximum_associations = _PYNETDICOM_ASSOCIATION_CAP
        ae.maximum_pdu_size = cfg.max_pdu
        ae.acse_timeout = cfg.handshake_timeout
        ae.dimse_timeout = cfg.dimse_timeout
        ae.network_timeout = cfg.network_timeout
        ae.require_called_aet = True
        ae.add_supported_context(Verification, VERIFICATION_TRANSFER_SYNTAXES)
        for sop_class in SIGNAL_SOP_CLASSES:
            ae.add_supported_context(sop_class, SIGNAL_TRANSFER_SYNTAXES)
        for context in AllStoragePresentationContexts:
            assert context.abstract_syntax is not None
            ae.add_supported_context(context.abstract_syntax, ACCEPTED_TRANSFER_SYNTAXES)
        return ae

    @property
    def port(self) -> int:
        """The bound TCP port (useful when configured as 0)."""
        if self._server is None:
            raise RuntimeError("the SCP is not running")
        return int(self._server.server_address[1])

    def start(self, *, resume_mpps: bool = True) -> None:
        """Listen in background threads; returns once the socket is bound.

        ``resume_mpps``: watch again the MPPS steps that were waiting when the node stopped
        (one of several SCP processes does, and one that restarts after a crash).
        """
        # pynetdicom spools chunked data sets to temporary files: this AE's go to the store's
        # filesystem (the final rename is atomic), named so that the reaper knows them.
        spool.register(self.ae, self.spool)
        try:  # COMPLETED steps still waiting for instances when the node stopped
            if resume_mpps:
                self.mpps.resume()
        except Exception:  # the timers complete their series instead
            log.exception("MPPS steps not resumed")
        handlers: list[Any] = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_REJECTED, self._on_rejected),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_N_ACTION, self.commitment.on_action),
            (evt.EVT_N_CREATE, self.mpps.on_create),
            (evt.EVT_N_SET, self.mpps.on_set),
            (evt.EVT_PDU_RECV, self._on_pdu),
            (evt.EVT_RELEASED, self._on_released),
            (evt.EVT_ABORTED, self._on_aborted),
            (evt.EVT_CONN_CLOSE, self._on_closed),
        ]
        tls = self.config.tls
        self._server = start_guarded_server(
            self.ae,
            (self.config.host, self.config.port),
            evt_handlers=handlers,
            ssl_context=server_context(tls) if tls is not None else None,
            handshake_timeout=self.config.handshake_timeout,
            on_alert=self._security_alert,
            listening=self._listening,
        )
        log.info(
            "listening",
            extra={
                "ae_title": self.config.ae_title,
                "host": self.config.host,
                "port": self.port,
                "tls": tls is not None,
            },
        )

    def stop(self) -> None:
        """Stop listening and abort running associations."""
        with self._admission:
            timers, self._silent = list(self._silent.values()), {}
        for timer in timers:
            timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        self.ae.shutdown()
        spool.unregister(self.ae)
        with self._admission:
            held, self._admitted = list(self._admitted.values()), {}
        for slot in held:
            self.slots.release(slot)

    # -- event handlers: none of them may raise ---------------------------------------------

    def _peer(self, event: Any) -> str:
        requestor = event.assoc.requestor
        return f"{str(requestor.ae_title).strip()}@{requestor.address}"

    def _store_failed(self, peer: str, status: int, reason: str) -> int:
        """Log, audit and count a refused C-STORE (or other request); returns ``status``."""
        return self.receiver.refused(peer, status, reason).status

    def _audit(self, kind: AuditKind, peer: str, detail: str | None = None) -> None:
        self._audit_subject(kind, peer, None, detail)

    def _audit_subject(
        self, kind: AuditKind, peer: str, subject: str | None, detail: str | None
    ) -> None:
        self.receiver.audit(kind, peer, detail, subject)

    def _security_alert(self, peer: str, detail: str) -> None:
        log.warning("security alert", extra={"peer": peer, "reason": detail})
        self.observer.security_alert()
        self._audit(AuditKind.SECURITY_ALERT, peer, detail)

    def _admit(self, assoc: Association, peer: str) -> str | None:
        """Count ``assoc`` against the limits; the refusal when one is reached, else ``None``.

        ``peer`` is the calling AE title and the source address: one peer holds at most
        ``per_peer_limit`` of the ``max_associations`` slots, so that it cannot lock out the
        others by holding (or re-opening) associations.
        """
        cfg = self.config
        with self._delivered_lock:  # ended without a release or an abort (see _on_closed)
            for gone in [a for a in self._delivered if not a.is_alive()]:
                del self._delivered[gone]
        with self._admission:
            ended = [a for a in self._admitted if not a.is_alive() or a.is_released or a.is_aborted]
            for ended_assoc in ended:
                self.slots.release(self._admitted.pop(ended_assoc))
            try:
                slot = self.slots.claim(
                    peer, total=cfg.max_associations, per_peer=cfg.per_peer_limit
                )
            except LimitReached as exc:
                return exc.reason
            self._admitted[assoc] = slot
            return None

    def _release(self, assoc: Association) -> None:
        """``assoc`` has ended: its slot is free for the node's other associations."""
        with self._admission:
            slot = self._admitted.pop(assoc, None)
        try:
            if slot is not None:
                self.slots.release(slot)
        except OSError:  # the next admission of this process frees it
            log.exception("association slot not released")

    def _on_requested(self, event: Any) -> None:
        try:
            assoc = event.assoc
            requestor = assoc.requestor
            calling = str(requestor.primitive.calling_ae_title).strip()
            called = str(requestor.primitive.called_ae_title).strip()
            peer = f"{calling}@{requestor.address}"
            decision = decide(self.config.allow, calling, str(requestor.address))
            if called != self.config.ae_title:
                refusal = (
                    f"called AE title {called!r} is not this node's ({self.config.ae_title!r}); "
                    f"calling AE title {calling!r}"
                )
                reject = (_REJECT_PERMANENT, _SOURCE_USER, _DIAG_CALLED_AE)
            elif not decision.allowed:
                refusal = str(decision.refusal)
                diagnostic = (
                    _DIAG_CALLING_AE if decision.refusal is Refusal.UNKNOWN_AE else _DIAG_NONE
                )
                reject = (_REJECT_PERMANENT, _SOURCE_USER, diagnostic)
            elif (limit := self._admit(assoc, peer)) is not None:
                refusal = limit
                reject = (_REJECT_TRANSIENT, _SOURCE_PROVIDER_PRESENTATION, _DIAG_LOCAL_LIMIT)
            else:
                return
            assoc.acse.send_reject(*reject)
            # As pynetdicom does after its own rejections: wait until the DUL has sent the
            # A-ASSOCIATE-RJ and the peer closed, else the socket is shut down first and the
            # peer sees an abort instead of the rejection.
            assoc.kill()
            self.observer.association(accepted=False)
            self._security_alert(peer, f"rejected: {refusal}")
        except Exception as exc:
            log.error("association check failed (%s); aborting", type(exc).__name__)
            log.debug("association check failure", exc_info=True)
            event.assoc.abort()

    def _on_accepted(self, event: Any) -> None:
        assoc = event.assoc
        timer = threading.Timer(
            self.config.first_message_timeout, self._first_message_due, (assoc,)
        )
        timer.daemon = True
        with self._admission:
            self._silent[assoc] = timer
        timer.start()
        self.observer.association(accepted=True)
        self._audit(AuditKind.ASSOCIATION_ACCEPTED, self._peer(event))

    def _on_pdu(self, event: Any) -> None:
        """The first whole DIMSE command of an association stops its first-message timer;
        then this handler is unbound (pynetdicom builds an event for each PDU it reads)."""
        assoc = event.assoc
        if assoc not in self._silent or not isinstance(event.pdu, P_DATA_TF):
            return
        for item in event.pdu.presentation_data_value_items:
            value = item.presentation_data_value
            if value and value[0] & _COMMAND_LAST == _COMMAND_LAST:
                with self._admission:
                    timer = self._silent.pop(assoc, None)
                if timer is not None:
                    timer.cancel()
                assoc.unbind(evt.EVT_PDU_RECV, self._on_pdu)
                return

    def _first_message_due(self, assoc: Association) -> None:
        """Abort ``assoc`` if it has sent no DIMSE command within ``first_message_timeout``."""
        with self._admission:
            silent = self._silent.pop(assoc, None) is not None
        if not silent or not assoc.is_established:
            return
        requestor = assoc.requestor
        peer = f"{str(requestor.ae_title).strip()}@{requestor.address}"
        timeout = self.config.first_message_timeout
        log.warning(
            "no DIMSE request in time; association aborted",
            extra={"peer": peer, "seconds": timeout},
        )
        self._audit(AuditKind.ASSOCIATION_ABORTED, peer, f"no DIMSE request within {timeout:g} s")
        assoc.abort()

    def _on_rejected(self, event: Any) -> None:
        # Rejections by pynetdicom itself (called AE title, no acceptable context...).
        self.observer.association(accepted=False)
        self._security_alert(self._peer(event), "rejected by the association negotiation")

    def _on_released(self, event: Any) -> None:
        """Tell ``on_released`` what the association stored (if anything)."""
        self._release(event.assoc)
        try:
            with self._delivered_lock:
                stored = self._delivered.pop(event.assoc, None)
            if not stored or self.on_released is None:
                return
            self.on_released(
                Delivery(
                    peer=self._peer(event),
                    studies=frozenset(study for study, _ in stored),
                    series=frozenset(series for _, series in stored),
                )
            )
        except Exception as exc:  # the timers complete what this would have confirmed
            log.error("released-association handler failed (%s)", type(exc).__name__)
            log.debug("released-association handler failure", exc_info=True)

    def _on_aborted(self, event: Any) -> None:
        """An aborted association: forget what it stored (the timers decide)."""
        self._release(event.assoc)
        with self._delivered_lock:
            self._delivered.pop(event.assoc, None)

    def _on_closed(self, event: Any) -> None:
        """The connection closed: the slot is free. What the association stored is left for
        :meth:`_on_released`: a peer closes as soon as it has the A-RELEASE-RP, and the DUL
        thread can see that close before the association thread has told its release.
        Entries of associations that ended without a release or an abort are dropped by
        :meth:`_admit`."""
        self._release(event.assoc)

    def reap_spool(self, *, min_age: float = 5.0) -> int:
        """Remove spool files that no running transfer or handler owns; returns how many.

        pynetdicom deletes its temporary file only after the C-STORE handler ran: an abort or
        a dropped connection mid-transfer, or a command it fails to decode (which kills the
        association's DUL thread), leaves the file behind. Only pynetdicom's spool files of
        this SCP are candidates (:mod:`dicomnode.net.spool`); those of live associations
        (being written, queued or stored) and those in a handler are kept.
        """
        self.spool.release_ended()
        in_handler = set(self._in_handler)
        removed = 0
        for path in self.spool.stale(older_than=min_age, now=time.time()):
            if os.path.basename(path) in in_handler:
                continue
            try:
                os.unlink(path)
                removed += 1
            except FileNotFoundError:
                continue
        if removed:
            log.info("removed %d spool files of interrupted transfers", removed)
        return removed

    def _origin(self, event: Any) -> SeriesOrigin:
        """``prior`` for a C-STORE that a C-MOVE of the node's own triggered, else ``received``.

        A C-MOVE's sub-operations carry the move originator's AE title (PS3.7 9.1.1.1): it
        is a prior when that is one of the node's own calling AE titles (``node.ae_title``,
        a source's ``calling_ae_title``) and the sender is a configured source.
        """
        originator = getattr(event.request, "MoveOriginatorApplicationEntityTitle", None)
        if not originator:
            return SeriesOrigin.RECEIVED
        if isinstance(originator, bytes):
            originator = originator.decode("ascii", "replace")
        ours = {self.config.ae_title} | {
            s.calling_ae_title for s in self.sources.values() if s.calling_ae_title
        }
        sender = str(event.assoc.requestor.ae_title).strip()
        if originator.strip() in ours and sender in {s.ae_title for s in self.sources.values()}:
            return SeriesOrigin.PRIOR
        return SeriesOrigin.RECEIVED

    def _on_echo(self, event: Any) -> int:
        return Status.SUCCESS

    def _on_store(self, event: Any) -> int:
        """Answer a status for anything that reaches the storage service; never raise."""
        try:
            return self._store(event)
        except Exception as exc:  # the last net: pynetdicom would answer 0xC211 and log a traceback
            log.error("store handler failed (%s)", type(exc).__name__)
            log.debug("store handler failure", exc_info=True)
            try:
                peer = self._peer(event)
            except Exception:
                peer = "?"
            return self._store_failed(peer, Status.CANNOT_UNDERSTAND, "unexpected error")

    def _store(self, event: Any) -> int:
        request = event.request
        peer = self._peer(event)
        if not isinstance(request, C_STORE):
            # pynetdicom hands any request on a storage context (N-ACTION, N-CREATE, N-GET...)
            # to the storage service; it answers with a C-STORE response.
            return self._store_failed(
                peer, Status.UNRECOGNIZED_OPERATION, f"{request.msg_type} on a storage context"
            )
        spool = event.dataset_path
        if spool is None:
            return self._store_failed(
                peer, Status.CANNOT_UNDERSTAND, "C-STORE request without a data set"
            )
        origin = self._origin(event)
        self._in_handler.add(spool.name)
        try:
            received = self.receiver.receive(
                spool,
                sop_class_uid=str(request.AffectedSOPClassUID or ""),
                sop_instance_uid=str(request.AffectedSOPInstanceUID or ""),
                calling_ae=str(event.assoc.requestor.ae_title).strip(),
                peer=peer,
                origin=origin,
            )
        finally:
            self._in_handler.discard(spool.name)
        result = received.result
        if result is not None and self.on_released is not None:
            with self._delivered_lock:
                self._delivered.setdefault(event.assoc, set()).add(
                    (result.study_uid, result.series_uid)
                )
        return received.status
