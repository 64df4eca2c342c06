"""A job's priors: find the patient's earlier studies at the sources and retrieve them.

Run by the worker just before a job whose route has a ``priors`` policy and whose pipeline
:attr:`~dicomnode.pipeline.Pipeline.uses_priors`. So a source that is down delays only that
job, by ``priors.timeout`` at most; then the job runs without (the missing) priors and
:attr:`~dicomnode.pipeline.PipelineInputs.priors_note` says why, for the pipeline's report.

Steps, per source of ``priors.from`` until one gives priors: C-FIND STUDY by PatientID (and
IssuerOfPatientID) within the look-back, the current study excluded, newest first; C-FIND
SERIES of each study, kept when ``priors.modality`` and ``priors.when`` hold (tested on the
source's answer, as routing tests a header), until ``most_recent`` studies have some; each
chosen series is used as it is when the store already holds it (received earlier), else
retrieved by C-MOVE to the node's own AE title (stored by the node's SCP, which may run in
another process: the C-MOVE's final response comes after every sub-operation was stored, and
the instance count in the database is checked against it) or by C-GET. ``priors.max_bytes``
bounds what is retrieved: a series whose estimated size (instances × a typical instance size
of its modality) would exceed what is left is skipped.

Then, for each chosen study, the node's own earlier SRs of it made by the job's pipeline are
looked for at the same source (C-FIND SERIES, Modality SR; :mod:`dicomnode.jobs.prior_reports`),
retrieved the same way, checked, and the newest that reports on a prior series becomes that
prior's :attr:`~dicomnode.pipeline.contract.PriorInput.reports`: the pipeline may use its
measurements instead of re-running on the prior. One ``priors.reports`` audit row per study
says how many were listed, how many are ours and which is used.

A DICOMweb source (``sources.<name>.url``) is asked the same questions by QIDO-RS (studies,
then the series of each) and the chosen series are retrieved by WADO-RS
(:mod:`dicomnode.net.dicomweb`): streamed to the store's spool and stored through the
receivers' store path, marked prior; there ``priors.max_bytes`` also stops a response that
grows beyond what is left of it (nothing of that series is stored).

Retrieved series are :data:`~dicomnode.store.models.SeriesOrigin.PRIOR`: they complete like
any series, but no route runs on them, so nothing of them is exported; retention keeps them
under the store's policy. Every step is an audit row (``priors.*``); no log line carries a
patient identifier.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import func, select

from dicomnode.config.schema import AnySource, Config, DicomwebSource, RetrieveMethod
from dicomnode.errors import QueryFailed
from dicomnode.jobs.prior_reports import (
    Report,
    may_be_ours,
    newest_for,
    read_report,
    report_query,
)
from dicomnode.net.dicomweb import DicomwebSearch, source_label
from dicomnode.net.query import StudyFound, find, find_studies, peer_label
from dicomnode.net.receive import Receiver
from dicomnode.net.retrieve import Moved, Retrieval
from dicomnode.pipeline.contract import PriorInput, SeriesInput
from dicomnode.routing import SeriesFacts, compile_when
from dicomnode.routing.schema import SPECIAL_KEYS, PriorsPolicy
from dicomnode.store.audit import AuditKind, record
from dicomnode.store.db import Database
from dicomnode.store.ingest import Store
from dicomnode.store.models import Instance, Series, Study

__all__ = ["PriorsOutcome", "gather_priors", "typical_instance_bytes"]

log = logging.getLogger(__name__)

#: Seconds the database is polled, after a C-MOVE's final response, for its instances.
_SETTLE_SECONDS = 5.0
#: Typical bytes of one instance, by modality, to estimate a series' size before moving it.
_TYPICAL_BYTES = {"CT": 530_000, "MR": 300_000, "PT": 70_000, "NM": 70_000, "SR": 100_000}
_LARGE_IMAGES = {"MG": 30_000_000, "DX": 10_000_000, "CR": 10_000_000}
_SERIES_KEYS = (
    "SeriesInstanceUID",
    "Modality",
    "SeriesDescription",
    "SeriesNumber",
    "BodyPartExamined",
    "NumberOfSeriesRelatedInstances",
)


def typical_instance_bytes(modality: str | None) -> int:
    """Estimated bytes of one instance of ``modality`` (1 MB when unknown)."""
    key = (modality or "").upper()
    return _TYPICAL_BYTES.get(key) or _LARGE_IMAGES.get(key) or 1_000_000


@dataclass(frozen=True)
class PriorsOutcome:
    """A job's priors and, when some are missing, why (``note``)."""

    priors: tuple[PriorInput, ...]
    note: str | None
    seconds: float


@dataclass
class _Progress:
    """What a gathering has done so far (shared with the waiting thread)."""

    priors: list[PriorInput] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str = ""
    bytes: int = 0
    #: Set when ``priors.timeout`` passed: what the gathering finds later is ignored.
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, text: str) -> bool:
        """Add a note unless closed; whether it was added."""
        with self.lock:
            if not self.closed:
                self.notes.append(text)
            return not self.closed

    def add(self, prior: PriorInput) -> None:
        """Add a prior unless closed."""
        with self.lock:
            if not self.closed:
                self.priors.append(prior)

    def attach(self, series_uid: str, reports: tuple[Path, ...]) -> None:
        """Give the prior of ``series_uid`` its ``reports``, unless closed."""
        with self.lock:
            if self.closed:
                return
            self.priors = [
                replace(p, reports=reports) if p.series.series_uid == series_uid else p
                for p in self.priors
            ]


@dataclass(frozen=True)
class _Patient:
    patient_id: str
    issuer: str | None
    study_date: date


def gather_priors(
    *,
    config: Config,
    db: Database,
    route: str,
    policy: PriorsPolicy,
    current: Sequence[SeriesInput],
    store: Store | None = None,
    tick: Callable[[], object] | None = None,
    tick_seconds: float = 10.0,
    pipeline: str | None = None,
) -> PriorsOutcome:
    """Find and retrieve the priors of the study of ``current``, within ``policy.timeout``.

    Never raises: a failure (source down, refused, timed out) is audited and gives a note.

    Parameters
    ----------
    config : Config
        The node's config (sources, node AE title, store path).
    db : Database
        The state database (where the SCP records what a C-MOVE brought).
    route : str
        Name of the job's route (for the audit trail).
    policy : PriorsPolicy
        The route's ``priors``.
    current : sequence of SeriesInput
        The job's series (the patient's identity is read from the first file).
    store : Store, optional
        Where C-GET stores instances (made from ``config`` when needed and not given).
    tick : callable, optional
        Called every ``tick_seconds`` while waiting (the worker renews the job's lease).
    pipeline : str, optional
        Name of the job's pipeline (its ``Pipeline.name``, as our results carry it): our
        earlier SRs of each prior made by it are retrieved too. None: none are looked for.
    """
    started = time.monotonic()
    progress = _Progress()
    retrieval = Retrieval(calling_ae=config.node.ae_title)
    gatherer = _Gatherer(
        config, db, route, policy, current, store, retrieval, progress, pipeline=pipeline
    )
    thread = threading.Thread(target=gatherer.run, name="dicomnode-priors", daemon=True)
    thread.start()
    deadline = started + policy.timeout
    while thread.is_alive() and (left := deadline - time.monotonic()) > 0:
        thread.join(min(left, tick_seconds))
        if tick is not None and thread.is_alive():
            tick()
    with progress.lock:
        progress.closed = True  # what the gathering finds from now on is ignored
        priors, notes = tuple(progress.priors), list(progress.notes)
    if thread.is_alive():
        retrieval.cancel()
        why = (
            f"prior not retrieved: source {progress.source or policy.from_[0]} did not answer "
            f"within {policy.timeout:g} s"
        )
        notes.append(why)
        gatherer.audit(AuditKind.PRIORS_FAILED, progress.source, why)
        log.warning("priors timed out", extra={"route": route, "seconds": policy.timeout})
    note = "; ".join(dict.fromkeys(notes)) or None
    seconds = round(time.monotonic() - started, 3)
    log.info(
        "priors gathered",
        extra={"route": route, "priors": len(priors), "seconds": seconds, "note": note},
    )
    return PriorsOutcome(priors, note, seconds)


class _Gatherer:
    """The work of :func:`gather_priors`, on its own thread."""

    def __init__(
        self,
        config: Config,
        db: Database,
        route: str,
        policy: PriorsPolicy,
        current: Sequence[SeriesInput],
        store: Store | None,
        retrieval: Retrieval,
        progress: _Progress,
        *,
        pipeline: str | None = None,
    ):
        self.config, self.db, self.route, self.policy = config, db, route, policy
        self.current = current
        self.study_uid = current[0].study_uid
        self._store = store
        self.retrieval = retrieval
        self.progress = progress
        self.clauses = compile_when(policy.when, "priors.when")
        self.deadline = time.monotonic() + policy.timeout
        #: The job's pipeline, whose earlier reports of the priors are looked for (if set).
        self.pipeline = pipeline
        self._webs: dict[str, DicomwebSearch] = {}

    def audit(self, kind: AuditKind, source: str, detail: str, subject: str | None = None) -> None:
        """One audit row (never raises: the job runs whatever the audit does)."""
        peer = source
        if source in self.config.sources:
            peer = f"{source} {_label(self.config.sources[source])}"
        try:
            with self.db.session() as session:
                record(
                    session, kind, subject=subject or self.study_uid, peer=peer[:80], detail=detail
                )
        except Exception:
            log.exception("cannot write a priors audit row")

    def run(self) -> None:
        """Gather; every failure becomes a note (never raises)."""
        try:
            patient = self._patient()
            if patient is None:
                return
            for name in self.policy.from_:
                self.progress.source = name
                if self._from_source(name, self.config.sources[name], patient):
                    return
        except Exception as exc:  # the job runs without priors rather than fail
            log.exception("priors failed")
            self.progress.note(f"prior not retrieved: {type(exc).__name__}")

    def _remaining(self) -> float:
        return max(1.0, self.deadline - time.monotonic())

    def _patient(self) -> _Patient | None:
        files = [p for s in self.current for p in s.files]
        header = dcmread(
            files[0],
            stop_before_pixels=True,
            specific_tags=["PatientID", "IssuerOfPatientID", "StudyDate"],
        )
        patient_id = str(header.get("PatientID") or "").strip()
        if not patient_id:
            self.progress.note("prior not retrieved: the current study has no PatientID")
            return None
        try:
            when = datetime.strptime(str(header.get("StudyDate") or ""), "%Y%m%d").date()
        except ValueError:
            when = datetime.now(UTC).date()
        issuer = str(header.get("IssuerOfPatientID") or "").strip() or None
        return _Patient(patient_id, issuer, when)

    def _from_source(self, name: str, source: AnySource, patient: _Patient) -> bool:
        """Priors from one source; whether it gave some."""
        policy = self.policy
        start = patient.study_date - timedelta(days=policy.lookback_days)
        dates = f"{start:%Y%m%d}-{patient.study_date:%Y%m%d}"
        self.audit(
            AuditKind.PRIORS_REQUESTED,
            name,
            f"route {self.route}: look-back {policy.lookback}, most recent {policy.most_recent}",
        )
        try:
            studies = [
                s for s in self._studies(source, patient, dates) if s.study_uid != self.study_uid
            ]
            chosen = self._choose(source, studies)
        except QueryFailed as exc:
            return self._failed(name, f"prior not retrieved: source {name}: {exc.reason}")
        series_count = sum(len(found) for _, found in chosen)
        self.audit(
            AuditKind.PRIORS_FOUND,
            name,
            f"{len(studies)} earlier studies within {policy.lookback}, "
            f"{len(chosen)} chosen with {series_count} matching series",
        )
        if not chosen:
            self.progress.note(
                f"no prior found: source {name} holds no matching earlier study within "
                f"{policy.lookback}"
            )
            return False
        for study, found in chosen:
            for identifier in found:
                try:
                    self._use(name, source, study, identifier)
                except QueryFailed as exc:
                    self._failed(name, f"prior not retrieved: source {name}: {exc.reason}")
            if self.pipeline and any(
                p.series.study_uid == study.study_uid for p in self.progress.priors
            ):
                self._reports(name, source, study, self.pipeline)
        return bool(self.progress.priors)

    def _studies(self, source: AnySource, patient: _Patient, dates: str) -> list[StudyFound]:
        """The patient's studies at ``source`` within ``dates`` (C-FIND or QIDO-RS)."""
        if isinstance(source, DicomwebSource):
            return self._web(source).find_studies(
                patient.patient_id, issuer=patient.issuer, dates=dates, timeout=self._remaining()
            )
        return find_studies(
            source,
            patient.patient_id,
            issuer=patient.issuer,
            dates=dates,
            calling_ae=self.config.node.ae_title,
            timeout=self._remaining(),
        )

    def _web(self, source: DicomwebSource) -> DicomwebSearch:
        """The QIDO-RS/WADO-RS client of ``source`` (one per source, its connections kept),
        cancelled with the C-MOVEs and C-GETs."""
        if source.url not in self._webs:
            self._webs[source.url] = DicomwebSearch(source, self.retrieval.cancelled)
        return self._webs[source.url]

    def _failed(self, name: str, why: str) -> bool:
        if self.progress.note(why):
            self.audit(AuditKind.PRIORS_FAILED, name, why)
        log.warning("priors failed", extra={"route": self.route, "reason": why})
        return False

    def _choose(
        self, source: AnySource, studies: Sequence[StudyFound]
    ) -> list[tuple[StudyFound, list[Dataset]]]:
        """The most recent ``most_recent`` studies with matching series, and those series."""
        chosen: list[tuple[StudyFound, list[Dataset]]] = []
        for study in studies:
            if len(chosen) >= self.policy.most_recent:
                break
            found = [s for s in self._series(source, study) if self._matches(study, s)]
            if found:
                chosen.append((study, found))
        return chosen

    def _series(self, source: AnySource, study: StudyFound) -> list[Dataset]:
        query = Dataset()
        query.QueryRetrieveLevel = "SERIES"
        query.StudyInstanceUID = study.study_uid
        keys = [*_SERIES_KEYS, *(k for k in self.policy.when if k not in SPECIAL_KEYS)]
        for key in dict.fromkeys(keys):
            setattr(query, key, None)
        if self.policy.modality:
            query.Modality = self.policy.modality
        return self._find_series(source, query)

    def _find_series(self, source: AnySource, query: Dataset) -> list[Dataset]:
        """A SERIES-level search of one study: C-FIND with ``query``, or QIDO-RS with its
        Modality as matching key and its empty keys as ``includefield``."""
        if isinstance(source, DicomwebSource):
            return self._web(source).find_series(
                str(query.StudyInstanceUID),
                keys=[e.keyword for e in query if e.keyword and e.VM == 0],
                modality=str(query.get("Modality") or "") or None,
                timeout=self._remaining(),
            )
        return find(source, query, calling_ae=self.config.node.ae_title, timeout=self._remaining())

    def _matches(self, study: StudyFound, identifier: Dataset) -> bool:
        modality = str(identifier.get("Modality") or "").strip()
        if self.policy.modality and modality.upper() != self.policy.modality.upper():
            return False
        series_uid = str(identifier.get("SeriesInstanceUID") or "")
        if not series_uid:
            return False
        facts = SeriesFacts(study.study_uid, series_uid, identifier, _instances(identifier) or 0)
        return all(clause.check(facts) is None for clause in self.clauses)

    def _use(self, name: str, source: AnySource, study: StudyFound, identifier: Dataset) -> None:
        """Use one prior series: as stored, or retrieved now (within the byte budget)."""
        series_uid = str(identifier.SeriesInstanceUID)
        if not self._fetch(name, source, study, identifier):
            return
        prior = self._prior(study, series_uid)
        if prior is not None:
            self.progress.add(prior)

    def _fetch(self, name: str, source: AnySource, study: StudyFound, identifier: Dataset) -> bool:
        """Make sure the store holds one series of ``study``: already, or retrieved now
        (within the byte budget); False when skipped for the budget."""
        series_uid = str(identifier.SeriesInstanceUID)
        expected = _instances(identifier)
        held = self._held(series_uid)
        if held and (expected is None or held >= expected):
            self.audit(
                AuditKind.PRIORS_RETRIEVED,
                name,
                f"series {series_uid}: already stored ({held} instances), used as is",
                subject=study.study_uid,
            )
            return True
        modality = str(identifier.get("Modality") or "")
        estimate = (expected or 1) * typical_instance_bytes(modality)
        left = int(self.policy.max_bytes) - self.progress.bytes
        if estimate > left:
            self._failed(
                name,
                f"prior series skipped: about {estimate // 10**6} MB, above what is left "
                f"of priors.max_bytes ({max(left, 0) // 10**6} MB)",
            )
            return False
        self._retrieve(name, source, study, series_uid, expected, left)
        return True

    def _reports(self, name: str, source: AnySource, study: StudyFound, pipeline: str) -> None:
        """Our earlier SRs of ``study`` made by ``pipeline``: found at ``source``, retrieved,
        checked; the newest reporting on each prior series is attached to it. A failure here
        only costs the reuse (the pipeline re-runs on the prior): audited, no note."""
        try:
            answers = self._find_series(source, report_query(study.study_uid))
            listed = may_be_ours(answers, pipeline)
            reports: list[Report] = []
            for identifier in listed:
                if self._fetch(name, source, study, identifier):
                    reports.extend(
                        self._our_reports(str(identifier.SeriesInstanceUID), study, pipeline)
                    )
        except QueryFailed as exc:
            why = f"earlier reports not retrieved: source {name}: {exc.reason}"
            self.audit(AuditKind.PRIORS_FAILED, name, why, subject=study.study_uid)
            log.warning("prior reports failed", extra={"route": self.route, "reason": why})
            return
        used = []
        for prior in [p for p in self.progress.priors if p.series.study_uid == study.study_uid]:
            newest = newest_for(reports, prior.series.series_uid)
            if newest is not None:
                self.progress.attach(prior.series.series_uid, (newest.path,))
                used.append(f"SR {newest.sop_instance_uid} for series {prior.series.series_uid}")
        self.audit(
            AuditKind.PRIORS_REPORTS,
            name,
            f"{len(listed)} SR series listed that may be {pipeline}'s, "
            f"{len(reports)} reports of {pipeline} found"
            + (f"; used: {', '.join(used)}" if used else "; none used"),
            subject=study.study_uid,
        )

    def _our_reports(self, series_uid: str, study: StudyFound, pipeline: str) -> list[Report]:
        """The stored instances of one SR series that are ``pipeline``'s reports of ``study``."""
        with self.db.session() as session:
            paths = session.scalars(
                select(Instance.path)
                .join(Series)
                .where(Series.series_uid == series_uid)
                .order_by(Instance.id)
            ).all()
        found = (
            read_report(self.config.store_path / path, pipeline=pipeline, study_uid=study.study_uid)
            for path in paths
        )
        return [report for report in found if report is not None]

    def _retrieve(
        self,
        name: str,
        source: AnySource,
        study: StudyFound,
        series_uid: str,
        expected: int | None,
        budget: int,
    ) -> None:
        started = time.monotonic()
        if isinstance(source, DicomwebSource):
            fetched = self._web(source).retrieve_series(
                study.study_uid,
                series_uid,
                receiver=Receiver(self._the_store()),
                max_bytes=budget,
                timeout=self._remaining(),
            )
            moved, how = Moved(fetched.stored, fetched.failed, 0), "WADO-RS"
        elif source.retrieve is RetrieveMethod.GET:
            moved = self.retrieval.get(
                source,
                study.study_uid,
                series_uid,
                store=self._the_store(),
                timeout=self._remaining(),
            )
            how = "C-GET"
        else:
            moved = self.retrieval.move(
                source,
                study.study_uid,
                series_uid,
                destination=self.config.node.ae_title,
                timeout=self._remaining(),
            )
            how = "C-MOVE"
        wanted = moved.completed + moved.warning
        settle = time.monotonic() + min(_SETTLE_SECONDS, self._remaining())
        held = self._held(series_uid)
        while held < wanted and time.monotonic() < settle:
            time.sleep(0.1)
            held = self._held(series_uid)
        size = self._bytes(series_uid)
        self.progress.bytes += size
        seconds = round(time.monotonic() - started, 3)
        self.audit(
            AuditKind.PRIORS_RETRIEVED,
            name,
            f"series {series_uid}: {how} {moved.completed} instances, {moved.failed} failed, "
            f"{held} stored, {size} bytes, {seconds} s",
            subject=study.study_uid,
        )
        log.info(
            "prior series retrieved",
            extra={"route": self.route, "instances": held, "bytes": size, "seconds": seconds},
        )
        if moved.failed or (expected is not None and held < expected):
            self.progress.note(
                f"prior incomplete: source {name} sent {held} of {expected or wanted} instances"
            )

    def _the_store(self) -> Store:
        """The store C-GET and WADO-RS store priors in (made from the config when needed)."""
        if self._store is None:
            self._store = Store(
                self.config.store_path, self.db, min_free=int(self.config.storage.min_free)
            )
        return self._store

    def _held(self, series_uid: str) -> int:
        with self.db.session() as session:
            return int(
                session.scalar(
                    select(func.count(Instance.id))
                    .join(Series)
                    .where(Series.series_uid == series_uid)
                )
                or 0
            )

    def _bytes(self, series_uid: str) -> int:
        with self.db.session() as session:
            return int(
                session.scalar(
                    select(func.coalesce(func.sum(Instance.size), 0))
                    .join(Series)
                    .where(Series.series_uid == series_uid)
                )
                or 0
            )

    def _prior(self, study: StudyFound, series_uid: str) -> PriorInput | None:
        store = self.config.store_path
        with self.db.session() as session:
            rows = session.execute(
                select(Instance.path, Series.modality, Series.description, Study.study_uid)
                .join(Series, Instance.series_id == Series.id)
                .join(Study, Series.study_id == Study.id)
                .where(Series.series_uid == series_uid)
                .order_by(Instance.id)
            ).all()
        if not rows:
            return None
        series = SeriesInput(
            study_uid=rows[0][3],
            series_uid=series_uid,
            files=tuple(Path(store / r[0]) for r in rows),
            modality=rows[0][1],
            description=rows[0][2],
            role="prior",
        )
        return PriorInput(series, study_date=study.study_date)


def _label(source: AnySource) -> str:
    """How audit rows name a source: ``AE@host:port`` or its DICOMweb URL."""
    return source_label(source) if isinstance(source, DicomwebSource) else peer_label(source)


def _instances(identifier: Dataset) -> int | None:
    raw = identifier.get("NumberOfSeriesRelatedInstances")
    try:
        return int(raw) if raw not in (None, "") else None
    except (TypeError, ValueError):
        return None
