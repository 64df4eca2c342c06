"""Modality Performed Procedure Step SCP (PS3.4 Annex F.7) as a completion signal.

A modality creates a step (N-CREATE, status IN PROGRESS) when an acquisition starts and
updates it (N-SET) as it goes; the final N-SET says COMPLETED and lists, in its Performed
Series Sequence, every instance it made. Those become the *expected set*: as soon as every
expected instance is stored, their series complete at once (``completed_by: mpps``), and their
studies once every series of the study is complete, without waiting for the timer. COMPLETED
may come before the last instances: each stored instance is then looked up in a dictionary of
awaited UIDs (the C-STORE path does nothing more), and the last one settles the step.
DISCONTINUED settles it without completing anything: the timers decide. Instances that
another SCP process of the node stores (``node.processes``) are not announced here: while a
step waits, the store is looked at again every :data:`LOOK_AGAIN` seconds.

Steps are kept in the ``mpps`` table; a COMPLETED step that was still waiting when the node
stopped is watched again at start-up (:meth:`MppsService.resume`).
"""

from __future__ import annotations

import enum
import json
import logging
import threading
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID, generate_uid
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from dicomnode.dimse import Status
from dicomnode.net.signals import (
    SignalContext,
    complete_series,
    stored_instances,
)
from dicomnode.store.audit import AuditKind
from dicomnode.store.models import CompletionSignal, PerformedProcedureStep, utcnow

__all__ = ["MPPS", "MppsService", "StepStatus", "expected_instances"]

log = logging.getLogger(__name__)

#: Modality Performed Procedure Step SOP Class.
MPPS = UID("1.2.840.10008.3.1.2.3.3")
#: COMPLETED steps older than this are not watched again at start-up (their instances are not
#: coming any more; the timers completed what came).
RESUME_WITHIN = timedelta(days=1)
#: Seconds between looks at the store for awaited instances (stored by another process).
LOOK_AGAIN = 1.0


class StepStatus(str, enum.Enum):
    """Performed Procedure Step Status (0040,0252)."""

    IN_PROGRESS = "IN PROGRESS"
    COMPLETED = "COMPLETED"
    DISCONTINUED = "DISCONTINUED"


_FINAL = {StepStatus.COMPLETED.value, StepStatus.DISCONTINUED.value}


def expected_instances(ds: Dataset) -> list[str]:
    """The SOP Instance UIDs the Performed Series Sequence of ``ds`` references (images and
    non-image composite instances), in order, once each."""
    found: dict[str, None] = {}
    for series in ds.get("PerformedSeriesSequence") or []:
        for key in ("ReferencedImageSequence", "ReferencedNonImageCompositeSOPInstanceSequence"):
            for item in series.get(key) or []:
                uid = str(item.get("ReferencedSOPInstanceUID", "") or "")
                if uid:
                    found[uid] = None
    return list(found)


class MppsService:
    """The N-CREATE and N-SET handlers, and the watch over the expected instances.

    Parameters
    ----------
    ctx : SignalContext
        Database (table ``mpps``), store, arrivals (each one is looked up in the watch),
        where completions and audit rows go.
    """

    def __init__(self, ctx: SignalContext):
        self.ctx = ctx
        self._lock = threading.Lock()
        #: COMPLETED step -> its expected instances not stored yet.
        self._missing: dict[str, set[str]] = {}
        #: expected instance -> the steps waiting for it.
        self._awaited: dict[str, set[str]] = {}
        self._looking: threading.Thread | None = None
        ctx.arrivals.listen(self.stored)

    # -- pynetdicom event handlers (never raise) -------------------------------------------

    def on_create(self, event: Any) -> tuple[int, Dataset | None]:
        """EVT_N_CREATE: record a new step (status IN PROGRESS)."""
        peer, calling = _peer(event)
        try:
            ds = event.attribute_list
            status = str(ds.get("PerformedProcedureStepStatus", "") or "")
            if status != StepStatus.IN_PROGRESS.value:
                return self._refuse(peer, Status.INVALID_ATTRIBUTE_VALUE, f"created {status!r}")
            reply: Dataset | None = None
            uid = str(event.request.AffectedSOPInstanceUID or "")
            if not uid:  # the SCP assigns it (PS3.4 F.7.2.1.1) and returns it
                uid = generate_uid()
                reply = Dataset()
                reply.AffectedSOPInstanceUID = uid
            now = utcnow()
            with self.ctx.db.session() as session:
                session.add(
                    PerformedProcedureStep(
                        sop_instance_uid=uid,
                        status=status,
                        calling_ae=calling[:16] or None,
                        expected=json.dumps(expected_instances(ds)),
                        created_at=now,
                        updated_at=now,
                    )
                )
            self.ctx.audit(AuditKind.MPPS_CREATED, peer, uid, status)
            return Status.SUCCESS, reply
        except IntegrityError:
            return self._refuse(peer, Status.DUPLICATE_SOP_INSTANCE, "step exists")
        except Exception as exc:
            return self._failed(peer, exc)

    def on_set(self, event: Any) -> tuple[int, Dataset | None]:
        """EVT_N_SET: update a step; COMPLETED starts the watch, DISCONTINUED settles it."""
        peer, _ = _peer(event)
        try:
            uid = str(event.request.RequestedSOPInstanceUID or "")
            mods = event.modification_list
            with self.ctx.db.session() as session:
                step = session.scalar(
                    select(PerformedProcedureStep).where(
                        PerformedProcedureStep.sop_instance_uid == uid
                    )
                )
                if step is None:
                    return self._refuse(peer, Status.NO_SUCH_OBJECT_INSTANCE, "unknown step")
                if step.status in _FINAL:
                    # PS3.4 F.7.2.2.2: a step no longer IN PROGRESS may not be updated
                    return self._refuse(peer, Status.PROCESSING_FAILURE, f"step {step.status}")
                status = str(mods.get("PerformedProcedureStepStatus", step.status) or "")
                if status not in {s.value for s in StepStatus}:
                    return self._refuse(peer, Status.INVALID_ATTRIBUTE_VALUE, f"set {status!r}")
                if "PerformedSeriesSequence" in mods:
                    step.expected = json.dumps(expected_instances(mods))
                step.status = status
                step.updated_at = utcnow()
                expected = json.loads(step.expected)
            self.ctx.audit(
                AuditKind.MPPS_UPDATED, peer, uid, f"{status}; {len(expected)} instances"
            )
            if status == StepStatus.COMPLETED.value:  # looked at after the response went
                threading.Thread(
                    target=self._watch, args=(uid, expected), name="dicomnode-mpps", daemon=True
                ).start()
            elif status == StepStatus.DISCONTINUED.value:
                self._mark_settled(uid)
            return Status.SUCCESS, None
        except Exception as exc:
            return self._failed(peer, exc)

    def _refuse(self, peer: str, status: Status, reason: str) -> tuple[int, None]:
        log.warning(
            "MPPS request refused",
            extra={"status": f"0x{status:04X}", "reason": reason, "peer": peer},
        )
        return status, None

    def _failed(self, peer: str, exc: Exception) -> tuple[int, None]:
        log.error("MPPS handler failed (%s)", type(exc).__name__)
        log.debug("MPPS handler failure", exc_info=True)
        return self._refuse(peer, Status.PROCESSING_FAILURE, "unexpected error")

    # -- the watch --------------------------------------------------------------------------

    def resume(self) -> None:
        """Watch again the COMPLETED steps that were waiting when the node stopped."""
        since = utcnow() - RESUME_WITHIN
        with self.ctx.db.session() as session:
            rows = session.execute(
                select(PerformedProcedureStep.sop_instance_uid, PerformedProcedureStep.expected)
                .where(
                    PerformedProcedureStep.status == StepStatus.COMPLETED.value,
                    PerformedProcedureStep.settled_at.is_(None),
                    PerformedProcedureStep.updated_at >= since,
                )
                .order_by(PerformedProcedureStep.id)
            ).all()
        for uid, expected in rows:
            self._watch(uid, json.loads(expected))

    def stored(self, sop_instance_uid: str) -> None:
        """An instance was stored (called on the C-STORE path: a dictionary lookup)."""
        if sop_instance_uid not in self._awaited:
            return
        ready = []
        with self._lock:
            for step in self._awaited.pop(sop_instance_uid, set()):
                missing = self._missing.get(step)
                if missing is not None:
                    missing.discard(sop_instance_uid)
                    if not missing:
                        del self._missing[step]
                        ready.append(step)
        for step in ready:
            threading.Thread(
                target=self._settle, args=(step,), name="dicomnode-mpps", daemon=True
            ).start()

    def _watch(self, uid: str, expected: list[str]) -> None:
        """Settle ``uid`` once every one of ``expected`` is stored (now, or as they come).

        The step is registered before the store is looked at, so an instance stored in
        between is seen by one of the two; whoever empties the missing set settles it.
        """
        with self._lock:
            self._missing[uid] = set(expected)
            for sop in expected:
                self._awaited.setdefault(sop, set()).add(uid)
        try:
            found = stored_instances(self.ctx.db, self.ctx.root, expected)
        except Exception:  # the arrivals still settle it, or the timers decide
            log.exception("MPPS expected instances not looked up")
            return
        with self._lock:
            missing = self._missing.get(uid)
            if missing is None:
                return  # settled meanwhile by the last arrival
            missing.difference_update(found)
            self._forget(uid, found)
            if missing:
                log.info("MPPS completed; waiting for instances", extra={"missing": len(missing)})
                if self._looking is None:
                    self._looking = threading.Thread(
                        target=self._look_again, name="dicomnode-mpps-look", daemon=True
                    )
                    self._looking.start()
                return
            del self._missing[uid]
        self._settle(uid)

    def _look_again(self) -> None:
        """While steps wait, find their instances that another process stored."""
        while True:
            time.sleep(LOOK_AGAIN)
            with self._lock:
                awaited = list(self._awaited)
                if not awaited:
                    self._looking = None
                    return
            try:
                found = stored_instances(self.ctx.db, self.ctx.root, awaited)
            except Exception:  # looked at again next time
                log.exception("MPPS expected instances not looked up")
                continue
            for sop in found:
                self.stored(sop)

    def _settle(self, uid: str) -> None:
        """Every expected instance of ``uid`` is stored: complete their series (and studies)."""
        try:
            with self.ctx.db.session() as session:
                expected = json.loads(
                    session.scalar(
                        select(PerformedProcedureStep.expected).where(
                            PerformedProcedureStep.sop_instance_uid == uid
                        )
                    )
                    or "[]"
                )
            found = stored_instances(self.ctx.db, self.ctx.root, expected).values()
            done = complete_series(
                self.ctx.db,
                CompletionSignal.MPPS,
                [f.series_uid for f in found],
                [f.study_uid for f in found],
            )
            self._mark_settled(uid)
            self.ctx.on_signal(done)
        except Exception:  # the timers complete the series instead
            log.exception("MPPS completion failed; the timers decide")

    def _forget(self, uid: str, sops: Iterable[str]) -> None:
        """``uid`` no longer awaits ``sops`` (called with the lock held)."""
        for sop in sops:
            waiting = self._awaited.get(sop)
            if waiting is not None:
                waiting.discard(uid)
                if not waiting:
                    del self._awaited[sop]

    def _mark_settled(self, uid: str) -> None:
        with self._lock:
            self._forget(uid, self._missing.pop(uid, set()))
        with self.ctx.db.session() as session:
            session.execute(
                update(PerformedProcedureStep)
                .where(PerformedProcedureStep.sop_instance_uid == uid)
                .values(settled_at=utcnow())
            )


def _peer(event: Any) -> tuple[str, str]:
    """(``AE@address``, calling AE title) of the requester."""
    try:
        requestor = event.assoc.requestor
        calling = str(requestor.ae_title).strip()
        return f"{calling}@{requestor.address}", calling
    except Exception:
        return "?", ""
