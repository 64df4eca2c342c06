"""The one path from a received Part 10 file to the store, for C-STORE and STOW-RS alike.

Both receivers spool a data set to ``<store>/.incoming`` and hand it here:
:meth:`Receiver.receive` runs :meth:`dicomnode.store.ingest.Store.ingest` (every check, fsync
before commit, ``storage.min_free``, duplicates and supersedes) and then does what a receiver
owes the rest of the node: a failure is logged, audited (``store.failed``) and counted; a
success is counted and told to the completion-signal services (:class:`Arrivals`). It never
raises: it answers the status and reason the caller reports (a DIMSE status, or a STOW-RS
Failure Reason, which uses the same codes).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from dicomnode.dimse import Status
from dicomnode.errors import StoreRejected
from dicomnode.net.signals import Arrivals
from dicomnode.store.audit import AuditKind, record
from dicomnode.store.ingest import Store, StoreResult
from dicomnode.store.models import SeriesOrigin

__all__ = ["Received", "Receiver", "ScpObserver"]

log = logging.getLogger(__name__)


class ScpObserver:
    """Receives the receivers' events (for metrics); the default does nothing. Never raises."""

    def association(self, *, accepted: bool) -> None:
        """An association request was accepted or rejected."""

    def stored(self, *, outcome: str, size: int) -> None:
        """An instance was answered with Success (``outcome``: stored/duplicate/superseded)."""

    def store_failed(self, *, status: int) -> None:
        """A C-STORE (or a STOW-RS instance) was answered with the failure ``status``."""

    def security_alert(self) -> None:
        """A security event: TLS handshake refused, oversized PDU (rejections: association)."""


@dataclass(frozen=True)
class Received:
    """What receiving one instance did: ``result`` on success, else ``status`` and ``reason``."""

    status: int
    reason: str | None = None
    result: StoreResult | None = None

    @property
    def ok(self) -> bool:
        """Whether the instance is stored (stored, duplicate or superseded)."""
        return self.result is not None


class Receiver:
    """Store received files and account for each: logs, audit rows, metrics, arrivals.

    Parameters
    ----------
    store : Store
        Where received instances go.
    observer : ScpObserver, optional
        Told about each stored and failed instance (metrics).
    arrivals : Arrivals, optional
        Told each stored SOP Instance UID (Storage Commitment waits on it).
    """

    def __init__(
        self, store: Store, observer: ScpObserver | None = None, arrivals: Arrivals | None = None
    ):
        self.store = store
        self.observer = observer or ScpObserver()
        self.arrivals = arrivals or Arrivals()

    def receive(
        self,
        spool: Path,
        *,
        sop_class_uid: str,
        sop_instance_uid: str,
        peer: str,
        calling_ae: str | None = None,
        study_uid: str | None = None,
        origin: SeriesOrigin = SeriesOrigin.RECEIVED,
    ) -> Received:
        """Store ``spool`` (consumed in every case); never raises.

        Parameters
        ----------
        spool : Path
            The received Part 10 file in ``<store>/.incoming``.
        sop_class_uid, sop_instance_uid : str
            What the sender said it sends (C-STORE command, or the File Meta Information of a
            STOW-RS part): the data set must agree.
        peer : str
            Who sent it, for logs and audit rows (``AE@address``, ``stow:<who>@address``).
        calling_ae : str, optional
            The sender's AE title, recorded with the instance (routes may select on it).
        study_uid : str, optional
            The study the instance must belong to (STOW-RS ``/studies/{study}``).
        origin : SeriesOrigin
            ``prior`` for instances the node retrieved itself (C-MOVE sub-operations).
        """
        started = time.perf_counter()
        try:
            result = self.store.ingest(
                spool,
                sop_class_uid=sop_class_uid,
                sop_instance_uid=sop_instance_uid,
                calling_ae=calling_ae,
                peer=peer,
                study_uid=study_uid,
                origin=origin,
            )
        except StoreRejected as exc:
            return self.refused(peer, exc.status, exc.reason)
        except Exception as exc:
            log.error("store failed unexpectedly (%s)", type(exc).__name__)
            log.debug("store failure", exc_info=True)
            spool.unlink(missing_ok=True)
            return self.refused(peer, Status.CANNOT_UNDERSTAND, "unexpected error")
        self.arrivals.stored(result.sop_instance_uid)
        self.observer.stored(outcome=result.outcome.value, size=result.size)
        log.debug(
            "stored",
            extra={
                "sop_instance_uid": result.sop_instance_uid,
                "outcome": result.outcome.value,
                "bytes": result.size,
                "ms": round((time.perf_counter() - started) * 1000, 1),
                "peer": peer,
            },
        )
        return Received(Status.SUCCESS, result=result)

    def refused(self, peer: str, status: int, reason: str) -> Received:
        """Log, audit (``store.failed``) and count an instance refused with ``status``."""
        log.warning(
            "store refused", extra={"status": f"0x{status:04X}", "reason": reason, "peer": peer}
        )
        self.audit(AuditKind.STORE_FAILED, peer, f"0x{status:04X} {reason}")
        self.observer.store_failed(status=status)
        return Received(status, reason)

    def audit(
        self, kind: AuditKind, peer: str, detail: str | None = None, subject: str | None = None
    ) -> None:
        """One audit row; a failure to write it is logged, never raised."""
        try:
            with self.store.db.session() as session:
                record(session, kind, subject=subject, peer=peer, detail=detail)
        except Exception:  # the audit must not take a receiver down
            log.exception("cannot write an audit row")
