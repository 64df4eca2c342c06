"""Storage Commitment Push Model SCP (PS3.4 Annex J) as a completion signal.

A sender lists in an N-ACTION (Action Type 1) every instance it sent, under a Transaction UID.
The node answers the N-ACTION with Success at once, then, in a thread of its own:

1. judges each listed instance: committed when its row is committed and its file is in the
   store with the listed SOP class; otherwise failed with a reason (0x0112 no such object
   instance, 0x0119 class/instance conflict). Instances still arriving (a modality sends the
   N-ACTION right after its last C-STORE, possibly while a parallel association is still
   storing) are waited for, at most ``node.commitment_wait`` seconds, woken by each store
   of this process and looking again every :data:`LOOK_AGAIN` s (other SCP processes);
2. completes at once (``completed_by: commitment``) each series whose listed instances are
   all committed, and their studies once every series of the study is complete, and hands
   that on to the node (routing, queuing) without waiting for the timer;
3. sends the result, N-EVENT-REPORT (Event Type 1: all committed, 2: some failed), on the
   same association while the requester keeps it open, else on a new association to the
   ``sources`` entry whose AE title is the requester's, proposing the SCP role for Storage
   Commitment (SCP/SCU role selection, PS3.4 J.3.3). A requester that is gone and not a known
   source gets nothing: audited and logged.

Each request and each result (sent or not) is one audit row.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.dimse_messages import N_ACTION_RSP
from pynetdicom.pdu_primitives import A_RELEASE

from dicomnode.config.schema import NodeConfig, SourceConfig
from dicomnode.dimse import Status
from dicomnode.errors import ConfigError
from dicomnode.net.peer import no_delay, tls_args
from dicomnode.net.signals import (
    SignalContext,
    StoredInstance,
    complete_series,
    stored_instances,
)
from dicomnode.store.audit import AuditKind
from dicomnode.store.models import CompletionSignal

__all__ = [
    "LOOK_AGAIN",
    "STORAGE_COMMITMENT",
    "STORAGE_COMMITMENT_INSTANCE",
    "CommitmentRequest",
    "CommitmentService",
    "Reference",
    "Verdict",
    "judge",
    "parse_request",
    "report_dataset",
]

log = logging.getLogger(__name__)

#: Storage Commitment Push Model SOP Class and its well-known SOP Instance.
STORAGE_COMMITMENT = UID("1.2.840.10008.1.20.1")
STORAGE_COMMITMENT_INSTANCE = UID("1.2.840.10008.1.20.1.1")
#: Seconds between looks at the store while listed instances are awaited: an instance that
#: another SCP process (``node.processes``) stores wakes no waiter here.
LOOK_AGAIN = 0.5
#: Event Type IDs of the N-EVENT-REPORT (PS3.4 J.3.3).
EVENT_ALL_COMMITTED = 1
EVENT_SOME_FAILED = 2
#: Requests handled at once; more are answered 0x0213 (resource limitation).
MAX_RUNNING = 8
#: Instances one request may list.
MAX_REFERENCES = 100_000
#: How long the report thread waits for the N-ACTION response to be on its way.
_RESPONSE_WAIT = 5.0
#: How long a requester has, after the N-ACTION response, to release its association (it then
#: gets the result on a new one).
_RELEASE_GRACE = 0.5
#: How long a requester that kept its association has to answer the N-EVENT-REPORT.
_REPORT_RESPONSE = 10.0


@dataclass(frozen=True)
class Reference:
    """A listed instance: Referenced SOP Class and Instance UIDs."""

    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True)
class CommitmentRequest:
    """A parsed N-ACTION: the transaction and the instances it lists."""

    transaction_uid: str
    references: tuple[Reference, ...]


@dataclass
class Verdict:
    """The judgement of one request."""

    committed: list[Reference] = field(default_factory=list)
    failed: list[tuple[Reference, Status]] = field(default_factory=list)
    #: Series and study UIDs of each committed instance's SOP Instance UID.
    stored: dict[str, StoredInstance] = field(default_factory=dict)

    @property
    def complete_series(self) -> list[str]:
        """Series whose listed instances are all committed."""
        failed = {
            self.stored[ref.sop_instance_uid].series_uid
            for ref, _ in self.failed
            if ref.sop_instance_uid in self.stored
        }
        series = {self.stored[ref.sop_instance_uid].series_uid for ref in self.committed}
        return sorted(series - failed)

    @property
    def studies(self) -> list[str]:
        """Studies of the committed instances."""
        return sorted({self.stored[ref.sop_instance_uid].study_uid for ref in self.committed})


def parse_request(
    action_type: int | None, instance_uid: str, info: Dataset | None
) -> CommitmentRequest | Status:
    """The :class:`CommitmentRequest` of an N-ACTION, or the failure :class:`Status` to answer.

    Parameters
    ----------
    action_type : int or None
        Action Type ID (1: request storage commitment).
    instance_uid : str
        Requested SOP Instance UID (the well-known instance).
    info : Dataset or None
        Action Information: Transaction UID and Referenced SOP Sequence.
    """
    if action_type != 1:
        return Status.NO_SUCH_ACTION
    if instance_uid != STORAGE_COMMITMENT_INSTANCE:
        return Status.INVALID_OBJECT_INSTANCE
    if info is None:
        return Status.INVALID_ARGUMENT_VALUE
    transaction = str(info.get("TransactionUID", "") or "")
    sequence = info.get("ReferencedSOPSequence") or []
    if not transaction or len(transaction) > 64 or not sequence:
        return Status.INVALID_ARGUMENT_VALUE
    if len(sequence) > MAX_REFERENCES:
        return Status.RESOURCE_LIMITATION
    references = []
    for item in sequence:
        sop_class = str(item.get("ReferencedSOPClassUID", "") or "")
        sop_instance = str(item.get("ReferencedSOPInstanceUID", "") or "")
        if not sop_class or not sop_instance:
            return Status.INVALID_ARGUMENT_VALUE
        references.append(Reference(sop_class, sop_instance))
    return CommitmentRequest(transaction, tuple(references))


def judge(references: tuple[Reference, ...], stored: Mapping[str, StoredInstance]) -> Verdict:
    """Committed or failed (with the reason) for each reference, given what is stored."""
    verdict = Verdict(stored=dict(stored))
    for ref in references:
        found = stored.get(ref.sop_instance_uid)
        if found is None:
            verdict.failed.append((ref, Status.NO_SUCH_OBJECT_INSTANCE))
        elif found.sop_class_uid != ref.sop_class_uid:
            verdict.failed.append((ref, Status.CLASS_INSTANCE_CONFLICT))
        else:
            verdict.committed.append(ref)
    return verdict


def report_dataset(transaction_uid: str, verdict: Verdict) -> tuple[int, Dataset]:
    """The Event Type ID and Event Information of the N-EVENT-REPORT of ``verdict``."""
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    ds.ReferencedSOPSequence = [_item(ref) for ref in verdict.committed]
    if verdict.failed:
        failed = []
        for ref, reason in verdict.failed:
            item = _item(ref)
            item.FailureReason = int(reason)
            failed.append(item)
        ds.FailedSOPSequence = failed
    if not verdict.committed:
        del ds.ReferencedSOPSequence  # PS3.4 J.3.3.1.1: present when at least one succeeded
    return (EVENT_SOME_FAILED if verdict.failed else EVENT_ALL_COMMITTED), ds


def _item(ref: Reference) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = ref.sop_class_uid
    item.ReferencedSOPInstanceUID = ref.sop_instance_uid
    return item


class CommitmentService:
    """The N-ACTION handler and the threads that judge, complete and report.

    Parameters
    ----------
    ctx : SignalContext
        Database, store, arrivals (they wake a request waiting for its instances), where
        completions and audit rows go.
    config : callable returning NodeConfig
        The listener's settings, read afresh for each request (reload).
    sources : callable returning a mapping of name to SourceConfig
        Where results go when the requester closed its association.
    """

    def __init__(
        self,
        ctx: SignalContext,
        *,
        config: Callable[[], NodeConfig],
        sources: Callable[[], Mapping[str, SourceConfig]],
    ):
        self.ctx = ctx
        self.config = config
        self.sources = sources
        self._running = threading.BoundedSemaphore(MAX_RUNNING)
        self._lock = threading.Lock()
        #: Associations with an N-ACTION response not yet sent: its event, set once sent.
        self._responding: dict[Association, list[threading.Event]] = {}

    # -- pynetdicom event handlers (never raise) -------------------------------------------

    def on_action(self, event: Any) -> tuple[int, Dataset | None]:
        """EVT_N_ACTION: answer at once; judge and report in a thread."""
        peer = "?"
        try:
            assoc = event.assoc
            requester = str(assoc.requestor.ae_title).strip()
            peer = f"{requester}@{assoc.requestor.address}"
            request = event.request
            try:
                info = event.action_information
            except Exception:  # undecodable Action Information
                info = None
            parsed = parse_request(
                request.ActionTypeID, str(request.RequestedSOPInstanceUID or ""), info
            )
            if isinstance(parsed, Status):
                return self._refuse(peer, parsed, "invalid storage commitment request")
            if not self._running.acquire(blocking=False):
                return self._refuse(peer, Status.RESOURCE_LIMITATION, "too many requests")
            responded = threading.Event()
            with self._lock:
                self._responding.setdefault(assoc, []).append(responded)
            # bound here, not for every association: while a handler is bound to it, each
            # C-STORE response is encoded by pynetdicom (:mod:`dicomnode.net.responses`)
            assoc.bind(evt.EVT_DIMSE_SENT, self.on_sent)
            threading.Thread(
                target=self._run,
                args=(parsed, assoc, requester, peer, responded),
                name="dicomnode-commitment",
                daemon=True,
            ).start()
            return Status.SUCCESS, None
        except Exception as exc:
            log.error("storage commitment handler failed (%s)", type(exc).__name__)
            log.debug("storage commitment handler failure", exc_info=True)
            return self._refuse(peer, Status.PROCESSING_FAILURE, "unexpected error")

    def on_sent(self, event: Any) -> None:
        """EVT_DIMSE_SENT (bound by :meth:`on_action`): an N-ACTION response is on its way;
        its report may follow."""
        if not isinstance(event.message, N_ACTION_RSP):
            return
        with self._lock:
            waiting = self._responding.get(event.assoc)
            if not waiting:
                return
            responded = waiting.pop(0)
            if not waiting:
                del self._responding[event.assoc]
        responded.set()

    def _refuse(self, peer: str, status: Status, reason: str) -> tuple[int, None]:
        log.warning(
            "storage commitment refused",
            extra={"status": f"0x{status:04X}", "reason": reason, "peer": peer},
        )
        self.ctx.audit(
            AuditKind.COMMITMENT_REQUESTED, peer, None, f"refused 0x{status:04X}: {reason}"
        )
        return status, None

    # -- the request's own thread ---------------------------------------------------------

    def _run(
        self,
        request: CommitmentRequest,
        assoc: Association,
        requester: str,
        peer: str,
        responded: threading.Event,
    ) -> None:
        try:
            started = time.monotonic()
            self.ctx.audit(
                AuditKind.COMMITMENT_REQUESTED,
                peer,
                request.transaction_uid,
                f"{len(request.references)} instances",
            )
            verdict = self._judge(request)
            self._complete(verdict)
            if not responded.wait(_RESPONSE_WAIT):
                log.warning("no N-ACTION response seen; reporting anyway", extra={"peer": peer})
            self._report(request, verdict, assoc, requester, peer)
            log.info(
                "storage commitment",
                extra={
                    "peer": peer,
                    "committed": len(verdict.committed),
                    "failed": len(verdict.failed),
                    "ms": round((time.monotonic() - started) * 1000, 1),
                },
            )
        except Exception as exc:  # the thread must not die silently
            log.error("storage commitment failed (%s)", type(exc).__name__)
            log.debug("storage commitment failure", exc_info=True)
            self.ctx.audit(
                AuditKind.COMMITMENT_UNREPORTED,
                peer,
                request.transaction_uid,
                f"unexpected error: {type(exc).__name__}",
            )
        finally:
            with self._lock:
                waiting = self._responding.get(assoc)
                if waiting and responded in waiting:
                    waiting.remove(responded)
                    if not waiting:
                        del self._responding[assoc]
            self._running.release()

    def _judge(self, request: CommitmentRequest) -> Verdict:
        """Judge every listed instance, waiting (bounded) for those not stored yet."""
        wanted = {ref.sop_instance_uid for ref in request.references}
        deadline = time.monotonic() + self.config().commitment_wait
        stored: dict[str, StoredInstance] = {}
        while True:
            seen = self.ctx.arrivals.count
            stored.update(stored_instances(self.ctx.db, self.ctx.root, wanted - stored.keys()))
            left = deadline - time.monotonic()
            if stored.keys() >= wanted or left <= 0:
                break
            # each store of this process wakes it; those of the node's other SCP processes
            # are seen by looking again
            self.ctx.arrivals.wait_past(seen, min(left, LOOK_AGAIN))
        return judge(request.references, stored)

    def _complete(self, verdict: Verdict) -> None:
        series = verdict.complete_series
        if not series:
            return
        done = complete_series(self.ctx.db, CompletionSignal.COMMITMENT, series, verdict.studies)
        try:
            self.ctx.on_signal(done)
        except Exception:  # the next sweep hands them on
            log.exception("signalled completions not handed on")

    def _report(
        self,
        request: CommitmentRequest,
        verdict: Verdict,
        assoc: Association,
        requester: str,
        peer: str,
    ) -> None:
        event_type, info = report_dataset(request.transaction_uid, verdict)
        counts = f"{len(verdict.committed)} committed, {len(verdict.failed)} failed"
        status = _send_on(assoc, info, event_type) if assoc.is_established else None
        if status is not None:
            how, problem = "same association", _status_problem(status)
        else:
            how, problem = "new association", self._send_new(requester, info, event_type)
        if problem is not None:
            log.warning(
                "storage commitment result not sent", extra={"peer": peer, "reason": problem}
            )
            self.ctx.audit(
                AuditKind.COMMITMENT_UNREPORTED,
                peer,
                request.transaction_uid,
                f"{counts}; {problem}",
            )
            return
        self.ctx.audit(
            AuditKind.COMMITMENT_REPORTED,
            peer,
            request.transaction_uid,
            f"{counts}; event type {event_type}; {how}",
        )

    def _send_new(self, requester: str, info: Dataset, event_type: int) -> str | None:
        """Report on a new association to the requester's source; None when sent, else why not."""
        source = next((s for s in self.sources().values() if s.ae_title == requester), None)
        if source is None:
            return f"association closed and {requester!r} is not a configured source"
        node = self.config()
        ae = AE(ae_title=source.calling_ae_title or node.ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = node.dimse_timeout
        ae.connection_timeout = node.handshake_timeout
        ae.add_requested_context(
            STORAGE_COMMITMENT, [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
        )
        # The node sends the N-EVENT-REPORT: it asks for the SCP role (PS3.4 J.3.3).
        role = build_role(STORAGE_COMMITMENT, scu_role=False, scp_role=True)
        try:
            tls = tls_args(source)
        except ConfigError as exc:
            return str(exc)
        assoc = ae.associate(
            source.host, source.port, ae_title=source.ae_title, ext_neg=[role], tls_args=tls
        )
        if not assoc.is_established:
            return "association rejected" if assoc.is_rejected else "no association (peer down?)"
        no_delay(assoc)
        try:
            status, _ = assoc.send_n_event_report(
                info, event_type, STORAGE_COMMITMENT, STORAGE_COMMITMENT_INSTANCE
            )
        finally:
            if assoc.is_established:
                assoc.release()
        return _status_problem(status)


def _status_problem(status: Dataset) -> str | None:
    code = int(status.Status) if "Status" in status else None
    if code is None:
        return "no N-EVENT-REPORT response"
    return None if code == 0 else f"N-EVENT-REPORT status 0x{code:04X}"


def _send_on(assoc: Association, info: Dataset, event_type: int) -> Dataset | None:
    """Report on the requester's own association: the peer's response status, or None when
    it could not be sent or got no response (the caller then tries a new association).

    A requester that wants the result on a new association releases right after the N-ACTION
    response: it is given :data:`_RELEASE_GRACE` to do so. The acceptor's reactor takes every
    incoming message off the DIMSE queue: it is then paused, as pynetdicom's own
    :meth:`Association.release` does, so that the response comes to this thread. It counts as
    paused once seen paused for a few consecutive looks (each turn of its loop is unpaused for
    at least a millisecond).
    """
    deadline = time.monotonic() + _RELEASE_GRACE
    while assoc.is_established and time.monotonic() < deadline:
        time.sleep(0.01)
    if not assoc.is_established:
        return None
    checkpoint = assoc._reactor_checkpoint
    checkpoint.clear()
    timeout = assoc.dimse_timeout
    try:
        calm, deadline = 0, time.monotonic() + _RESPONSE_WAIT
        while calm < 10:
            if time.monotonic() > deadline or not assoc.is_established:
                return None
            calm = calm + 1 if assoc._is_paused else 0
            time.sleep(0.0005)
        if isinstance(assoc.dul.peek_next_pdu(), A_RELEASE):
            return None  # releasing after all: the reactor answers it once resumed
        assoc.dimse_timeout = min(timeout or _REPORT_RESPONSE, _REPORT_RESPONSE)
        status, _ = assoc.send_n_event_report(
            info, event_type, STORAGE_COMMITMENT, STORAGE_COMMITMENT_INSTANCE
        )
        return status if "Status" in status else None
    except Exception as exc:  # a peer that closed meanwhile: a new association next
        log.info("report on the same association failed (%s)", type(exc).__name__)
        return None
    finally:
        assoc.dimse_timeout = timeout
        checkpoint.set()
