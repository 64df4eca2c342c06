"""Composition root: builds the node's parts from a :class:`~dicomnode.config.Config`."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler

from dicomnode.assembly.stability import sweep
from dicomnode.config.schema import Config
from dicomnode.net.scp import StorageSCP, configure_pynetdicom
from dicomnode.store.db import Database, open_database
from dicomnode.store.ingest import Store
from dicomnode.store.recovery import recover

__all__ = ["Node"]

log = logging.getLogger(__name__)


class Node:
    """A running node: SCP, store, database and the periodic sweeps.

    Parameters
    ----------
    config : Config
        The validated configuration.
    """

    def __init__(self, config: Config):
        self.config = config
        self.db: Database | None = None
        self.store: Store | None = None
        self.scp: StorageSCP | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        """Open state, recover from any crash, then listen and schedule the sweeps."""
        cfg = self.config
        configure_pynetdicom(log_identifiers=cfg.logging.log_identifiers)
        self.db = open_database(cfg.database_url)
        self.store = Store(cfg.store_path, self.db, min_free=int(cfg.storage.min_free))
        recover(self.store)
        if not cfg.node.allow:
            log.warning("node.allow is empty: any calling AE from any address may store")
        self.scp = StorageSCP(cfg.node, self.store)
        self.scp.start()
        self._scheduler = BackgroundScheduler(timezone="UTC")
        stab = cfg.stability
        interval = max(0.2, min(1.0, stab.series_seconds / 4))
        self._scheduler.add_job(
            self._sweep_stability,
            "interval",
            seconds=interval,
            id="stability",
            max_instances=1,
            coalesce=True,
        )
        self._scheduler.add_job(
            self.scp.reap_spool, "interval", seconds=5, id="spool", max_instances=1, coalesce=True
        )
        self._scheduler.start()
        log.info("node started", extra={"port": self.scp.port, "store": str(cfg.store_path)})

    def _sweep_stability(self) -> None:
        assert self.db is not None
        stab = self.config.stability
        try:
            sweep(self.db, series_seconds=stab.series_seconds, study_seconds=stab.study_seconds)
        except Exception:  # a failed sweep is retried at the next tick
            log.exception("stability sweep failed")

    def stop(self) -> None:
        """Stop listening, stop the sweeps and close the database."""
        if self.scp is not None:
            self.scp.stop()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
        if self.db is not None:
            self.db.dispose()
        log.info("node stopped")

    def serve_forever(self) -> None:
        """Run until SIGINT or SIGTERM."""

        def _stop(signum: int, _frame: FrameType | None) -> None:
            log.info("signal received", extra={"signal": signal.Signals(signum).name})
            self._stopping.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        self.start()
        try:
            self._stopping.wait()
        finally:
            self.stop()
