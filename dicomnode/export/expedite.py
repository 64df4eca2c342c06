"""Sending pending deliveries now instead of at the end of their backoff.

By hand: :func:`send_now` (``dicomnode send-now``, ``POST /api/deliveries/send-now``).

When a destination comes back: a failed connection puts its deliveries into exponential
backoff (up to ``export.max_backoff_seconds``, 10 minutes by default). While a destination has
deliveries in backoff after connection failures, the :class:`Prober` C-ECHOes it (STOW-RS: an
HTTP HEAD on its URL) every ``export.probe_seconds``, one probe per destination at a time,
and when it answers again, those deliveries are due at once. A destination that answers
C-ECHO but still fails stores is expedited once per outage, not every probe: the backoff of a
peer that is up but refuses stays in force.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import ColumnElement, or_, select, update

from dicomnode.config.schema import Config, DicomDestination, StowDestination
from dicomnode.export.audit import ExportAuditKind
from dicomnode.export.senders import echo
from dicomnode.jobs.models import Delivery, DeliveryState
from dicomnode.store.audit import record
from dicomnode.store.db import Database
from dicomnode.store.models import utcnow

__all__ = ["Prober", "reachable", "send_now"]

log = logging.getLogger(__name__)

#: HTTP answers of a gateway whose server behind is down: a failure the probe can end.
_GATEWAY_DOWN = (502, 503, 504)

#: The longest a probe waits for its answer (``export.timeout`` when shorter).
PROBE_TIMEOUT = 10.0


def _unreachable() -> ColumnElement[bool]:
    """Deliveries whose last attempt failed for want of a connection (no DIMSE status)."""
    return or_(Delivery.last_status.is_(None), Delivery.last_status.in_(_GATEWAY_DOWN))


def send_now(db: Database, *, destination: str | None = None, by: str = "by hand") -> int:
    """Make the pending deliveries (of ``destination``, or all) due now; returns how many.

    Deliveries being sent, delivered or dead are left alone (``dicomnode retry`` revives dead
    ones). An audit row ``delivery.expedited`` records the change.
    """
    return _expedite(db, destination, by=by)


def _expedite(
    db: Database, destination: str | None, *, by: str, unreachable_only: bool = False
) -> int:
    now = utcnow()
    query = update(Delivery).where(
        Delivery.state == DeliveryState.PENDING, Delivery.run_after > now
    )
    if destination is not None:
        query = query.where(Delivery.destination == destination)
    if unreachable_only:
        query = query.where(_unreachable())
    with db.session() as session:
        count = int(session.execute(query.values(run_after=now)).rowcount)  # type: ignore[attr-defined]
        if count:
            where = f"to {destination}" if destination is not None else "to every destination"
            record(
                session,
                ExportAuditKind.EXPEDITED,
                subject=None,
                detail=f"{count} pending deliveries {where} sent now ({by})",
            )
    return count


def reachable(
    destination: DicomDestination | StowDestination, *, calling_ae: str, timeout: float
) -> str | None:
    """None when ``destination`` answers, else why not.

    DICOM: C-ECHO Success. STOW-RS: any HTTP answer to a HEAD of its URL but a gateway's 502,
    503 or 504 (the server behind is down); a 404 or 405 still means the server is there.
    """
    if isinstance(destination, DicomDestination):
        # a bare TCP connect first: a peer that is down costs no association attempt, and
        # no pynetdicom error lines in the log every probe period
        try:
            with socket.create_connection((destination.host, destination.port), timeout):
                pass
        except OSError as exc:
            return f"no connection ({exc.strerror or type(exc).__name__})"
        return echo(destination, calling_ae=calling_ae, timeout=timeout)
    import requests

    try:
        response = requests.head(
            destination.url, headers=dict(destination.headers), timeout=timeout
        )
    except (requests.RequestException, OSError) as exc:
        return type(exc).__name__
    code = response.status_code
    return f"HTTP {code}" if code in _GATEWAY_DOWN else None


class Prober:
    """Probes destinations whose deliveries back off; sends them now when one answers.

    Parameters
    ----------
    db : Database
        The state database.
    config : Config
        Destinations, our AE title, ``export.timeout``.
    on_up : callable, optional
        Called after deliveries were made due (wake the exporter).
    workers : int
        Probes that may run at once (one per destination at most).
    """

    def __init__(
        self,
        db: Database,
        config: Config,
        *,
        on_up: Callable[[], None] | None = None,
        workers: int = 4,
    ):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.db = db
        self.config = config
        self.on_up = on_up
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dicomnode-probe")
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        #: Last probe outcome per destination with work (None: not probed in this episode).
        self._up: dict[str, bool] = {}

    @property
    def probing(self) -> frozenset[str]:
        """Destinations being probed now."""
        with self._lock:
            return frozenset(self._busy)

    def tick(self) -> list[str]:
        """Start a probe of each destination in backoff that is not being probed (never
        raises); returns the destinations probed."""
        try:
            active, waiting = self._destinations()
        except Exception:  # DB trouble: logged, tried again at the next tick
            log.exception("destination probe failed")
            return []
        with self._lock:
            for name in set(self._up) - active:  # its outage is over: forget it
                del self._up[name]
            start = sorted(
                name for name in waiting - self._busy if name in self.config.destinations
            )
            self._busy.update(start)
        for name in start:
            self._pool.submit(self._probe, name)
        return start

    def _destinations(self) -> tuple[set[str], set[str]]:
        """Destinations with pending or sending deliveries, and those with deliveries in
        backoff after a connection failure."""
        now = utcnow()
        with self.db.session() as session:
            active = set(
                session.scalars(
                    select(Delivery.destination)
                    .where(Delivery.state.in_([DeliveryState.PENDING, DeliveryState.SENDING]))
                    .distinct()
                )
            )
            waiting = set(
                session.scalars(
                    select(Delivery.destination)
                    .where(
                        Delivery.state == DeliveryState.PENDING,
                        Delivery.run_after > now,
                        _unreachable(),
                    )
                    .distinct()
                )
            )
        return active, waiting

    def _probe(self, name: str) -> None:
        try:
            problem = reachable(
                self.config.destinations[name],
                calling_ae=self.config.node.ae_title,
                timeout=min(self.config.export.timeout, PROBE_TIMEOUT),
            )
            with self._lock:
                was_up = self._up.get(name)
                self._up[name] = problem is None
            if problem is not None:
                log.debug(
                    "destination still unreachable", extra={"destination": name, "detail": problem}
                )
                return
            if was_up:  # answered before in this outage: its failures are not for want of a peer
                return
            count = _expedite(self.db, name, by="destination answers again", unreachable_only=True)
            if count:
                log.info(
                    "destination answers again; %d pending deliveries sent now",
                    count,
                    extra={"destination": name},
                )
                if self.on_up is not None:
                    self.on_up()
        except Exception:  # a probe never takes the scheduler down
            log.exception("probe of destination %s failed", name)
        finally:
            with self._lock:
                self._busy.discard(name)

    def close(self) -> None:
        """Stop probing (waits for running probes, at most their timeout)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
