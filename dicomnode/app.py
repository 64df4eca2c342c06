"""Composition root: builds the node's parts from a :class:`~dicomnode.config.Config`."""

from __future__ import annotations

import enum
import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

from dicomnode.api.metrics import NodeMetrics, ScpProcessCollector, StateCollector
from dicomnode.api.stage_metrics import StageMetrics
from dicomnode.audit.forward import AuditForwarder, result_lookup
from dicomnode.config.loader import load_config
from dicomnode.config.schema import Config
from dicomnode.errors import ConfigError, DatabaseError, OutOfSpace
from dicomnode.export.deliveries import Exporter
from dicomnode.export.expedite import Prober
from dicomnode.jobs.checker import IsolatedChecker
from dicomnode.jobs.enqueue import RoutingHook
from dicomnode.jobs.queue import Backoff, reap_expired
from dicomnode.jobs.retention import ResultFiles, study_busy
from dicomnode.jobs.worker import WorkerPool, results_root
from dicomnode.logs import set_level
from dicomnode.net.confirm import Confirmer
from dicomnode.net.processes import ScpProcesses
from dicomnode.net.receive import Receiver
from dicomnode.net.scp import Delivery, DeliveryCallback, StorageSCP, configure_pynetdicom
from dicomnode.notify.outbox import Outbox
from dicomnode.notify.send import WebhookSender
from dicomnode.pipeline.registry import PipelineRegistry, PipelineUnavailable
from dicomnode.reload import ReloadPlan, plan_reload
from dicomnode.routing import Route, compile_routes
from dicomnode.startup import (
    DataDirLock,
    StartupError,
    ensure_port_free,
    first_line,
    prepare_data_dir,
    sqlite_file,
    tighten,
)
from dicomnode.store.audit import AuditKind, record, set_sink
from dicomnode.store.db import Database, open_database
from dicomnode.store.ingest import Store
from dicomnode.store.models import utcnow
from dicomnode.store.recovery import recover
from dicomnode.store.retention import sweep_retention
from dicomnode.store.stability import CompletionHook, SweepResult, hand_on, sweep

if TYPE_CHECKING:
    from dicomnode.api import ApiServer

__all__ = ["Node", "Role"]

log = logging.getLogger(__name__)


class Role(str, enum.Enum):
    """What a node process runs: everything (``serve``) or only the workers (``worker``)."""

    SERVE = "serve"
    WORKER = "worker"


class Node:
    """A running node: SCP, store, database, workers, exporter and the periodic sweeps.

    Parameters
    ----------
    config : Config
        The validated configuration.
    role : Role
        ``serve``: SCP, stability, workers, exporter. ``worker``: workers, exporter and the
        lease reaper only (scale-out hosts sharing a PostgreSQL database and the store).
    config_file : Path, optional
        Where ``config`` came from: :meth:`reload` (SIGHUP) reads it again. None: built-in
        defaults, nothing to reload.
    """

    def __init__(self, config: Config, role: Role = Role.SERVE, *, config_file: Path | None = None):
        self.config = config
        self.role = Role(role)
        self.config_file = config_file
        self.db: Database | None = None
        self.store: Store | None = None
        #: the SCP in this process (``node.processes: 1``), or its children (more)
        self.scp: StorageSCP | None = None
        self.scp_processes: ScpProcesses | None = None
        #: the store path of STOW-RS (the SCP's when it runs in this process)
        self.receiver: Receiver | None = None
        self.workers: WorkerPool | None = None
        self.exporter: Exporter | None = None
        self.prober: Prober | None = None
        self.checker: IsolatedChecker | None = None
        self.confirmer: Confirmer | None = None
        self.outbox: Outbox | None = None
        self.notifier: WebhookSender | None = None
        # pipelines do not reload: one registry for the node's life (nothing imported yet)
        self.registry = PipelineRegistry(config.class_paths)
        self.metrics = NodeMetrics()
        self.api: ApiServer | None = None
        self.audit: AuditForwarder | None = None
        self._hooks: list[CompletionHook] = []
        self._scheduler: BackgroundScheduler | None = None
        self._stopping = threading.Event()
        self._reload_wanted = threading.Event()
        self._wakeup = threading.Event()
        self._lock: DataDirLock | None = None

    def start(self) -> None:
        """Open state, recover from any crash, then listen, work and schedule the sweeps.

        Raises
        ------
        StartupError
            The data dir is held by another node or not writable, a port is taken, the store
            is not writable or the database unreachable. Call :meth:`stop` afterwards.
        """
        cfg = self.config
        configure_pynetdicom(log_identifiers=cfg.logging.log_identifiers)
        self._claim_data_dir()
        if self.role is Role.SERVE:  # fail before touching state (the binds report a race)
            ensure_port_free("DICOM", cfg.node.host, cfg.node.port)
            if cfg.http.enabled:
                ensure_port_free("HTTP", cfg.http.host, cfg.http.port)
                import dicomnode.api.server  # noqa: F401 - load the web stack before listening
            prepare_data_dir(cfg.store_path, "store")
        try:
            self.db = open_database(cfg.database_url)
        except DatabaseError as exc:
            raise StartupError(first_line(str(exc))) from None
        self.metrics.registry.register(StateCollector(self.db))
        self._start_audit()
        if self.db.is_sqlite and self.role is Role.WORKER:
            log.warning("dicomnode worker on SQLite: run one process per database only")
        self._scheduler = BackgroundScheduler(timezone="UTC")
        if self.role is Role.SERVE:
            self._start_receiving()
            if cfg.http.enabled:
                self._follow_stages()
        self._start_notify()
        self.exporter = Exporter(self.db, cfg, outbox=self.outbox)
        self.workers = WorkerPool(self.db, cfg, on_success=self.exporter.wake, outbox=self.outbox)
        reap_every = max(0.5, min(30.0, cfg.workers.lease_seconds / 4))
        self._scheduler.add_job(
            self._reap, "interval", seconds=reap_every, id="reaper", max_instances=1, coalesce=True
        )
        if cfg.export.probe_seconds > 0:  # destinations that are down: sent as they come back
            self.prober = Prober(self.db, cfg, on_up=self.exporter.wake)
            self._scheduler.add_job(
                self.prober.tick,
                "interval",
                seconds=cfg.export.probe_seconds,
                id="probe",
                max_instances=1,
                coalesce=True,
            )
        self._scheduler.start()
        self.exporter.start()
        self.workers.start()
        if self.role is Role.SERVE and cfg.http.enabled:
            self._start_http()
        log.info(
            "node started",
            extra={
                "role": self.role.value,
                "port": self.port,
                "scp_processes": cfg.node.scp_processes if self.role is Role.SERVE else 0,
                "workers": len(self.workers.workers),
                "routes": len(cfg.routes),
            },
        )

    @property
    def port(self) -> int | None:
        """The DICOM port listened on (None: not listening)."""
        if self.scp is not None:
            return self.scp.port
        if self.scp_processes is not None:
            return self.scp_processes.port
        return None

    def _follow_stages(self) -> None:
        """Per-stage latency histograms on ``/metrics``: this process follows ``job_stages``
        (written by its own threads and by ``dicomnode worker`` processes) every second."""
        assert self.db is not None and self._scheduler is not None
        stages = StageMetrics(self.db)
        stages.start()
        self.metrics.registry.register(stages)
        self._scheduler.add_job(
            stages.poll, "interval", seconds=1, id="stage-metrics", max_instances=1, coalesce=True
        )

    def _start_notify(self) -> None:
        """The outbox the job and delivery transactions write to, and the sweep that sends
        it (``notify.webhooks``; nothing when none is configured)."""
        notify = self.config.notify
        if not notify.webhooks:
            return
        assert self.db is not None and self._scheduler is not None
        self.outbox = Outbox(notify, self.config.store_path)
        self.notifier = WebhookSender(self.db, notify)
        self._scheduler.add_job(
            self.notifier.sweep,
            "interval",
            seconds=notify.poll_seconds,
            id="notify",
            max_instances=1,
            coalesce=True,
        )

    def _claim_data_dir(self) -> None:
        """Data dir 0700 and writable; held exclusively unless this is a worker on a shared
        (PostgreSQL) database; an existing SQLite database made private (0600)."""
        cfg = self.config
        prepare_data_dir(cfg.data_dir)
        db_file = sqlite_file(cfg.database_url)
        shared = db_file is None and cfg.database_url.startswith("postgresql")
        if self.role is Role.SERVE or not shared:
            self._lock = DataDirLock(cfg.data_dir)
            self._lock.acquire()
        if db_file is not None:
            for path in (db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")):
                if path.exists():
                    tighten(path, 0o600)

    def _start_audit(self) -> None:
        """DICOM audit messages to the collector of ``audit.syslog``, when configured."""
        if self.config.audit.syslog is None:
            return
        assert self.db is not None
        self.audit = AuditForwarder(self.config, lookup=result_lookup(self.db))
        self.audit.start()
        set_sink(self.audit)

    def _start_http(self) -> None:
        from dicomnode.api import ApiServer
        from dicomnode.jobs import results_root
        from dicomnode.web.pages import PageContext, mount_pages

        assert self.db is not None
        db, store, scheduler, workers = self.db, self.store, self._scheduler, self.workers

        def database() -> tuple[bool, str]:
            with db.engine.connect() as conn:
                conn.exec_driver_sql("select 1")
            return True, db.engine.dialect.name

        def storage() -> tuple[bool, str]:
            if store is None:
                return True, "not receiving"
            try:
                store.check_space()
            except OutOfSpace as exc:
                return False, exc.reason
            return True, "writable, above storage.min_free"

        def sweeps() -> tuple[bool, str]:
            running = scheduler is not None and scheduler.running
            return running, "running" if running else "stopped"

        def worker_threads() -> tuple[bool, str]:
            alive = sum(w.is_alive() for w in workers.workers) if workers else 0
            wanted = self.config.workers.count
            return alive == wanted, f"{alive}/{wanted} alive"

        checks = {
            "database": database,
            "store": storage,
            "scheduler": sweeps,
            "workers": worker_threads,
        }
        http = self.config.http
        from dicomnode.api.server import HttpTlsError

        try:
            self.api = ApiServer(http, db, self.metrics, checks, self.receiver)
        except HttpTlsError as exc:
            raise StartupError(str(exc)) from None
        except OSError as exc:
            raise StartupError(f"HTTP port {http.port} on {http.host}: {exc.strerror}") from None
        mount_pages(
            self.api.app, PageContext(db, self.config.store_path, results_root(self.config))
        )
        self.api.start()

    def _start_receiving(self) -> None:
        cfg = self.config
        assert self.db is not None and self._scheduler is not None
        self.store = Store(cfg.store_path, self.db, min_free=int(cfg.storage.min_free))
        recover(self.store)
        routes = compile_routes(
            cfg.routes, pipelines=self.registry.names(), destinations=set(cfg.destinations)
        )
        self._route(cfg, routes)
        self._warn_unused_priors(cfg)
        if not cfg.node.allow:
            log.warning("node.allow is empty: any calling AE from any address may store")
        self.confirmer = self._confirmer(cfg)
        on_released = self._delivered if self.confirmer is not None else None
        if cfg.node.scp_processes > 1:
            self.scp_processes = ScpProcesses(
                cfg,
                cfg.node.scp_processes,
                observer=self.metrics,
                on_signal=self.signalled,
                on_released=on_released,
                audit=self.audit,
                store=self.store,
            )
            self.metrics.registry.register(ScpProcessCollector(self.scp_processes))
            self.scp_processes.start()
            self.receiver = Receiver(self.store, self.metrics)
        else:
            self._start_scp(cfg, on_released)
        interval = max(0.2, min(1.0, cfg.stability.series_seconds / 4))
        self._scheduler.add_job(
            self._sweep_stability,
            "interval",
            seconds=interval,
            id="stability",
            max_instances=1,
            coalesce=True,
        )
        if self.scp is not None:  # SCP processes reap their own (and theirs who died)
            self._scheduler.add_job(
                self.scp.reap_spool,
                "interval",
                seconds=5,
                id="spool",
                max_instances=1,
                coalesce=True,
            )
        self._scheduler.add_job(
            self._retention,
            "interval",
            seconds=600,
            id="retention",
            max_instances=1,
            coalesce=True,
            next_run_time=utcnow(),
        )

    def _start_scp(self, cfg: Config, on_released: DeliveryCallback | None) -> None:
        """The SCP in this process (``node.processes: 1``)."""
        assert self.store is not None
        self.scp = StorageSCP(
            cfg.node,
            self.store,
            observer=self.metrics,
            sources=cfg.dicom_sources,
            on_signal=self.signalled,
            on_released=on_released,
        )
        self.receiver = self.scp.receiver
        try:
            self.scp.start()
        except OSError as exc:
            node = cfg.node
            raise StartupError(f"DICOM port {node.port} on {node.host}: {exc.strerror}") from None

    def _warn_unused_priors(self, cfg: Config) -> None:
        """Say so when a route's ``priors`` policy names a pipeline that does not use priors
        (its jobs then run without retrieving any)."""
        for spec in cfg.routes:
            if spec.priors is None:
                continue
            try:
                uses = self.registry.get(spec.pipeline).uses_priors
            except PipelineUnavailable:
                continue  # reported with the pipelines
            if not uses:
                log.warning(
                    "route %s has a priors policy but pipeline %s does not use priors: "
                    "none will be retrieved",
                    spec.name,
                    spec.pipeline,
                )

    def _confirmer(self, cfg: Config) -> Confirmer | None:
        """The C-FIND confirmation of ``stability.confirm_with`` (None when it names none)."""
        names = cfg.stability.confirm_with
        if not names:
            return None
        assert self.db is not None
        confirmer = Confirmer(
            self.db,
            {name: cfg.dicom_sources[name] for name in names},
            calling_ae=cfg.node.ae_title,
            timeout=cfg.stability.confirm_timeout,
            on_complete=self.signalled,
        )
        confirmer.start()
        return confirmer

    def _delivered(self, delivery: Delivery) -> None:
        """A released association stored instances: have the sources confirm its studies."""
        if self.confirmer is not None:
            self.confirmer.submit(sorted(delivery.studies))

    def _route(self, cfg: Config, routes: list[Route]) -> None:
        """Queue jobs by ``routes`` from the next sweep on (at start-up and on reload)."""
        if not routes:
            self._hooks = []
            return
        if self.checker is None:
            # pipelines (and torch) are loaded and checked in a child, never in this process;
            # it is started from the main thread, which outlives it (PR_SET_PDEATHSIG)
            self.checker = IsolatedChecker(cfg)
            self.checker.start()
        threading.Thread(
            target=self.checker.warm,
            args=(sorted({route.pipeline for route in routes}),),
            name="dicomnode-warm-checks",
            daemon=True,
        ).start()
        self._hooks = [RoutingHook(cfg, routes, checker=self.checker)]

    def reload(self) -> bool:
        """Re-read the config file and apply its allow-list, routes, destinations and log level.

        The new objects are built in full, then swapped in: an association, a sweep or a
        delivery already under way finishes with the config it started with, and a queued
        job keeps its route's outputs and destinations. Other changed settings keep their
        running value (one log line names them: they need a restart). An invalid file is
        refused with one log line and the running config stays. Returns whether it applied.
        """
        if self.config_file is None:
            log.warning("config reload: the node runs on built-in defaults, no file to re-read")
            return False
        try:
            new, source = load_config(self.config_file)
            plan = plan_reload(self.config, new, source=source, registry=self.registry)
        except ConfigError as exc:
            log.error("config reload refused, the running config stays: %s", first_line(str(exc)))
            self._audit_config(AuditKind.CONFIG_REFUSED, first_line(str(exc)))
            return False
        if plan.needs_restart:
            log.warning(
                "config reload: %s changed but needs a restart; the running values stay",
                ", ".join(plan.needs_restart),
            )
        self._apply(plan)
        changed = ", ".join(plan.applied) or "nothing"
        log.info("config reloaded: %s", changed, extra={"routes": len(plan.routes)})
        detail = f"applied: {changed}"
        if plan.needs_restart:
            detail += f"; needs a restart: {', '.join(plan.needs_restart)}"
        self._audit_config(AuditKind.CONFIG_RELOADED, detail)
        return True

    def _apply(self, plan: ReloadPlan) -> None:
        cfg = plan.config
        if cfg.logging.level != self.config.logging.level:
            set_level(cfg.logging.level)
        if self.scp is not None:
            self.scp.config = cfg.node  # read afresh by each association request
        if self.scp_processes is not None:
            self.scp_processes.reload(cfg.node)
        if self.role is Role.SERVE:
            self._route(cfg, plan.routes)
        for part in (self.exporter, self.prober):
            if part is not None:
                part.config = cfg  # destinations are looked up at each delivery attempt
        self.config = cfg

    def _audit_config(self, kind: AuditKind, detail: str) -> None:
        if self.db is None:
            return
        try:
            with self.db.session() as session:
                record(session, kind, subject=str(self.config_file), detail=detail[:2000])
        except Exception:  # the audit row must not take the node down
            log.exception("cannot write an audit row")

    def signalled(self, done: SweepResult) -> None:
        """Act on completions a signal made (see :func:`dicomnode.store.stability.complete_now`)
        now instead of at the next sweep: route and queue them in a background thread.

        The completion handlers of the SCP call this after their own transaction committed;
        it never raises (the next sweep hands on whatever this did not).
        """
        if not (done.series or done.studies) or self.db is None:
            return
        db, hooks = self.db, self._hooks

        def act() -> None:
            try:
                if hand_on(db, hooks) and self.workers is not None:
                    self.workers.wake()
            except Exception:  # handed on again by the next sweep
                log.exception("signalled completions not handed on; the next sweep will")

        threading.Thread(target=act, name="dicomnode-signalled", daemon=True).start()

    def _sweep_stability(self) -> None:
        assert self.db is not None
        stab = self.config.stability
        try:
            done = sweep(
                self.db,
                series_seconds=stab.series_seconds,
                study_seconds=stab.study_seconds,
                hooks=self._hooks,
            )
            if (done.series or done.studies) and self.workers is not None:
                self.workers.wake()
        except Exception:  # a failed sweep (and its jobs) is retried at the next tick
            log.exception("stability sweep failed")

    def _retention(self) -> None:
        assert self.store is not None
        storage = self.config.storage
        try:
            sweep_retention(
                self.store,
                keep_days=storage.keep_days,
                low_water=2 * int(storage.min_free),
                busy=study_busy,
                extra_paths=ResultFiles(results_root(self.config)),
            )
        except Exception:  # retried at the next tick
            log.exception("retention sweep failed")

    def _reap(self) -> None:
        assert self.db is not None
        workers = self.config.workers
        try:
            reap_expired(
                self.db,
                backoff=Backoff(workers.backoff_seconds, workers.max_backoff_seconds),
                notify=self.outbox,
            )
        except Exception:  # retried at the next tick
            log.exception("lease reaper failed")

    def stop(self) -> None:
        """Stop listening, stop the workers (running jobs go back to the queue) and close."""
        if self.api is not None:
            self.api.stop()
        if self.scp is not None:
            self.scp.stop()
        if self.scp_processes is not None:
            self.scp_processes.stop()
        if self.confirmer is not None:
            self.confirmer.stop()
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        if self.workers is not None:
            self.workers.stop()
        if self.exporter is not None:
            self.exporter.stop()
        if self.prober is not None:
            self.prober.close()
        if self.notifier is not None:
            self.notifier.close()
        if self.checker is not None:
            self.checker.close()
        if self.audit is not None:  # after the exporter: its last rows go too
            set_sink(None)
            self.audit.close()
        if self.db is not None:
            self.db.dispose()
            log.info("node stopped")  # a start that failed before touching state stops quietly
        if self._lock is not None:
            self._lock.release()

    def serve_forever(self) -> None:
        """Run until SIGINT or SIGTERM; SIGHUP reloads the config (:meth:`reload`)."""

        def _signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal received", extra={"signal": signal.Signals(signum).name})
            wanted = self._reload_wanted if signum == signal.SIGHUP else self._stopping
            wanted.set()
            self._wakeup.set()

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, _signal)
        try:
            self.start()
            while not self._stopping.is_set():  # the main thread: reloads may start children
                self._wakeup.wait()
                self._wakeup.clear()
                if self._reload_wanted.is_set() and not self._stopping.is_set():
                    self._reload_wanted.clear()
                    self.reload()
        finally:
            self.stop()
