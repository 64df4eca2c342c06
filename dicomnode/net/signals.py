"""What the completion-signal services (Storage Commitment, MPPS) share.

* :class:`Arrivals`: the SCP counts every stored instance here; a service waiting for listed
  instances sleeps on it instead of polling.
* :func:`stored_instances`: which of a list of SOP Instance UIDs are durably stored (the row
  committed and the file on disk), with their class, series and study.
* :func:`complete_series`: a signal completes those series, and their studies once every series
  of the study is complete.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from dicomnode.store.audit import AuditKind
from dicomnode.store.db import Database
from dicomnode.store.models import CompletionSignal, Instance, Series, Study
from dicomnode.store.stability import SweepResult, complete_now, studies_all_complete

__all__ = [
    "Arrivals",
    "AuditWriter",
    "SignalContext",
    "OnSignal",
    "StoredInstance",
    "complete_series",
    "stored_instances",
]

#: Writes one audit row: (kind, peer, subject, detail); never raises.
AuditWriter = Callable[[AuditKind, str, str | None, str | None], None]

#: Told about completions a signal made (the node routes and queues them at once); must not
#: raise.
OnSignal = Callable[[SweepResult], None]

#: UIDs per ``IN (...)`` query (SQLite's parameter limit is far above; PostgreSQL has none).
_CHUNK = 500


class Arrivals:
    """A counter of stored instances that waiting threads can sleep on.

    :meth:`stored` costs one lock and a notify: it runs on the C-STORE path. Listeners
    (:meth:`listen`) are called with each stored SOP Instance UID on that path too, so they
    must be a dictionary lookup, not a query.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._count = 0
        self._listeners: list[Callable[[str], None]] = []

    @property
    def count(self) -> int:
        """Instances stored so far (compare with :meth:`wait_past`)."""
        return self._count

    def listen(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(sop_instance_uid)`` after each stored instance."""
        self._listeners.append(listener)

    def stored(self, sop_instance_uid: str) -> None:
        """An instance was stored (its row committed, its file in place)."""
        with self._changed:
            self._count += 1
            self._changed.notify_all()
        for listener in self._listeners:
            listener(sop_instance_uid)

    def wait_past(self, count: int, timeout: float) -> bool:
        """Wait until more than ``count`` instances were stored, at most ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._count <= count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True


@dataclass(frozen=True)
class SignalContext:
    """What the completion-signal services share.

    Attributes
    ----------
    db : Database
        The state database.
    root : Path
        The store root (instance paths are relative to it).
    arrivals : Arrivals
        Counts (and announces) each stored instance.
    on_signal : OnSignal
        Told about the completions a signal made.
    audit : AuditWriter
        Writes one audit row; never raises.
    """

    db: Database
    root: Path
    arrivals: Arrivals
    on_signal: OnSignal
    audit: AuditWriter


@dataclass(frozen=True)
class StoredInstance:
    """A durably stored instance: its SOP class and where it belongs."""

    sop_class_uid: str
    series_uid: str
    study_uid: str


def stored_instances(
    db: Database, root: Path, sop_instance_uids: Collection[str]
) -> dict[str, StoredInstance]:
    """Those of ``sop_instance_uids`` whose row is committed and whose file is in the store.

    Parameters
    ----------
    db : Database
        The state database.
    root : Path
        The store root (instance paths are relative to it).
    sop_instance_uids : collection of str
        The instances asked about.
    """
    wanted = list(dict.fromkeys(sop_instance_uids))
    found: dict[str, StoredInstance] = {}
    with db.session() as session:
        for start in range(0, len(wanted), _CHUNK):
            rows = session.execute(
                select(
                    Instance.sop_instance_uid,
                    Instance.sop_class_uid,
                    Instance.path,
                    Series.series_uid,
                    Study.study_uid,
                )
                .join(Series, Series.id == Instance.series_id)
                .join(Study, Study.id == Series.study_id)
                .where(Instance.sop_instance_uid.in_(wanted[start : start + _CHUNK]))
            )
            for uid, sop_class, path, series_uid, study_uid in rows:
                if (root / path).is_file():
                    found[uid] = StoredInstance(sop_class, series_uid, study_uid)
    return found


def complete_series(
    db: Database, signal: CompletionSignal, series: Sequence[str], studies: Sequence[str]
) -> SweepResult:
    """Complete the open ``series`` at once, then those of ``studies`` whose every series is
    complete, both judged so by ``signal``.

    Returns
    -------
    SweepResult
        What this call completed (hand it to the node's ``signalled``).
    """
    done = complete_now(db, signal, series=list(dict.fromkeys(series)))
    ready = studies_all_complete(db, list(dict.fromkeys(studies)))
    finished = complete_now(db, signal, studies=ready) if ready else SweepResult()
    return SweepResult(series=done.series, studies=finished.studies)
