"""Completion confirmed by the source: C-FIND counts compared with the node's own.

When an association that delivered instances is released, the SCP hands the studies and
series it delivered to :meth:`Confirmer.submit` (a :class:`~dicomnode.net.scp.Delivery`).
A worker thread asks the sources of ``stability.confirm_with``, in their order, for the
series of each study and their ``NumberOfSeriesRelatedInstances``
(:func:`~dicomnode.net.query.find_series`); the first source that holds the study decides:

* a series whose count equals the number of distinct instances the node has stored (its
  instance rows) completes at once, by :attr:`~dicomnode.store.models.CompletionSignal.CONFIRM`;
* the study completes when every series the source lists is stored here and every series
  of the study is complete.

Counts that differ (the source has more: the rest is still on its way; fewer: another sender
added some) complete nothing and are logged once per series and pair of counts. A query that
fails (source down, association refused, failure status, timeout) completes nothing: the
stability timers stay the fallback. Nothing here runs on an association's thread, and nothing
waits for it: :meth:`Confirmer.submit` only records the study in a bounded set of pending
studies (one entry per study however many associations deliver to it).

Only a *released* association is confirmed: an aborted one ended in a failure the sender
will usually retry, and what it has stored there may be changing; the timer decides those.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select

from dicomnode.errors import QueryFailed
from dicomnode.net.peer import Peer
from dicomnode.net.query import SeriesCount, find_series, peer_label
from dicomnode.store.db import Database
from dicomnode.store.models import CompletionSignal, Instance, Series, Study
from dicomnode.store.stability import SweepResult, complete_now, studies_all_complete

__all__ = ["MAX_PENDING", "Confirmation", "Confirmer", "Finder"]

log = logging.getLogger(__name__)

#: Studies that may wait for their confirmation at once; beyond it a study is left to the
#: timers (and one warning says so).
MAX_PENDING = 1024
#: Series whose count mismatch was logged (each pair of counts is logged once).
_TOLD = 4096

#: ``(peer, study_uid) -> series of the study with their counts``; :func:`find_series` with
#: the calling AE title and timeout bound (tests pass their own).
Finder = Callable[[Peer, str], list[SeriesCount]]


@dataclass(frozen=True)
class Confirmation:
    """What one confirmation of a study found.

    Attributes
    ----------
    source : str or None
        The name of the source that answered for the study; None when none did.
    completed : SweepResult
        The series and study this confirmation completed.
    differing : tuple of str
        Series whose counts differ from the source's.
    """

    source: str | None
    completed: SweepResult
    differing: tuple[str, ...] = ()


class Confirmer:
    """Asks the sources whether the node has every instance of the studies delivered to it.

    Parameters
    ----------
    db : Database
        The state database.
    sources : mapping of str to Peer
        The sources to ask, by name, in the order of ``stability.confirm_with``.
    calling_ae : str
        Our AE title (a source's ``calling_ae_title`` wins).
    timeout : float
        Seconds for the connection, the association and each C-FIND response.
    on_complete : callable, optional
        Given each non-empty :class:`SweepResult` after it committed (the node hands the
        completions on at once: :meth:`dicomnode.app.Node.signalled`); must not raise.
    finder : Finder, optional
        How a source is asked (default: C-FIND, :func:`~dicomnode.net.query.find_series`).
    max_pending : int
        Studies that may wait at once.
    """

    def __init__(
        self,
        db: Database,
        sources: Mapping[str, Peer],
        *,
        calling_ae: str,
        timeout: float,
        on_complete: Callable[[SweepResult], None] | None = None,
        finder: Finder | None = None,
        max_pending: int = MAX_PENDING,
    ):
        if not sources:
            raise ValueError("sources: name at least one source to confirm with")
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self.db = db
        self.sources = dict(sources)
        self.on_complete = on_complete
        self.max_pending = max_pending
        self._find: Finder = finder or (
            lambda peer, study: find_series(peer, study, calling_ae=calling_ae, timeout=timeout)
        )
        self._pending: OrderedDict[str, None] = OrderedDict()
        self._wanted = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._down: set[str] = set()
        self._told: OrderedDict[tuple[str, int | None, int], None] = OrderedDict()

    # -- the queue ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name="dicomnode-confirm", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5) -> None:
        """Stop the worker (a query under way ends by its own timeout); pending studies are
        left to the timers."""
        with self._wanted:
            self._stopping = True
            self._pending.clear()
            self._wanted.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def submit(self, study_uids: Sequence[str]) -> None:
        """Confirm ``study_uids`` soon; never blocks, never raises (a full queue leaves a
        study to the timers, with one warning)."""
        dropped = 0
        with self._wanted:
            if self._stopping:
                return
            for uid in study_uids:
                if uid in self._pending:
                    continue
                if len(self._pending) >= self.max_pending:
                    dropped += 1
                    continue
                self._pending[uid] = None
            self._wanted.notify()
        if dropped:
            log.warning(
                "confirmation queue full: %d studies left to the timers",
                dropped,
                extra={"max_pending": self.max_pending},
            )

    def _run(self) -> None:
        while True:
            with self._wanted:
                while not self._pending and not self._stopping:
                    self._wanted.wait()
                if self._stopping:
                    return
                study_uid, _ = self._pending.popitem(last=False)
            try:
                found = self.confirm(study_uid)
            except Exception:  # the timers complete it; the next delivery asks again
                log.exception("confirmation failed; the timers decide")
                continue
            done = found.completed
            if (done.series or done.studies) and self.on_complete is not None:
                self.on_complete(done)

    # -- one study ----------------------------------------------------------------------

    def confirm(self, study_uid: str) -> Confirmation:
        """Ask the sources about one study and complete what their counts confirm.

        Returns
        -------
        Confirmation
            Who answered, what completed, which series differ. Query failures are logged
            (once per outage of a source) and complete nothing.
        """
        answer = self._ask(study_uid)
        if answer is None:
            return Confirmation(None, SweepResult())
        source, listed = answer
        ours = self._stored_counts(study_uid)
        log.debug(
            "confirming",
            extra={
                "source": source,
                "listed": {item.series_uid: item.instances for item in listed},
                "stored": ours,
            },
        )
        equal: list[str] = []
        differing: list[str] = []
        for item in listed:
            stored = ours.get(item.series_uid, 0)
            if item.instances is not None and item.instances == stored:
                equal.append(item.series_uid)
            else:
                differing.append(item.series_uid)
                self._tell_mismatch(source, item, stored)
        series = complete_now(self.db, CompletionSignal.CONFIRM, series=equal)
        studies: list[str] = []
        listed_uids = {item.series_uid for item in listed}
        if (
            not differing
            and listed_uids <= set(ours)
            and studies_all_complete(self.db, [study_uid])
        ):
            studies = complete_now(self.db, CompletionSignal.CONFIRM, studies=[study_uid]).studies
        completed = SweepResult(series=series.series, studies=studies)
        if completed.series or completed.studies:
            log.info(
                "completion confirmed by the source",
                extra={
                    "source": source,
                    "series": len(completed.series),
                    "studies": len(completed.studies),
                },
            )
        return Confirmation(source, completed, tuple(differing))

    def _ask(self, study_uid: str) -> tuple[str, list[SeriesCount]] | None:
        """The first source's answer that lists the study's series; None when none does."""
        for name, peer in self.sources.items():
            try:
                listed = self._find(peer, study_uid)
            except QueryFailed as exc:
                if name not in self._down:
                    self._down.add(name)
                    log.warning(
                        "source not answering; completion left to the timers: %s",
                        exc.reason,
                        extra={"source": name, "peer": peer_label(peer)},
                    )
                continue
            if name in self._down:
                self._down.discard(name)
                log.info("source answers again", extra={"source": name})
            if listed:
                return name, listed
        return None

    def _stored_counts(self, study_uid: str) -> dict[str, int]:
        """Series of the study stored here -> number of distinct instances (rows)."""
        with self.db.session() as session:
            rows = session.execute(
                select(Series.series_uid, func.count(Instance.id))
                .join(Study, Series.study_id == Study.id)
                .outerjoin(Instance, Instance.series_id == Series.id)
                .where(Study.study_uid == study_uid)
                .group_by(Series.series_uid)
            )
            return {uid: int(count) for uid, count in rows}

    def _tell_mismatch(self, source: str, item: SeriesCount, stored: int) -> None:
        """One INFO line per series and pair of counts."""
        key = (item.series_uid, item.instances, stored)
        if key in self._told:
            return
        self._told[key] = None
        if len(self._told) > _TOLD:
            self._told.popitem(last=False)
        log.info(
            "counts differ from the source; not complete",
            extra={
                "source": source,
                "series_uid": item.series_uid,
                "source_instances": item.instances,
                "stored_instances": stored,
            },
        )
