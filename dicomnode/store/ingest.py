"""The durable store: a received file becomes ``<root>/<Study>/<Series>/<SOP>.dcm`` plus DB rows.

Order of work for each instance (the caller answers Success only after :meth:`Store.ingest`
returns): free-space check → header parse and structure check → UID checks → then, under a
per-UID lock, one of two orders:

- a new instance on ext4 (one flush, :meth:`Store._store_new`): rename into place, never over
  a file, marked with its content's SHA-256 → fsync of the file (its data and, on ext4, its
  name) → DB commit;
- anything else (other filesystems, re-sent or superseding instances): fsync of the spooled
  file → DB lookup → rename into place → DB commit → directory fsync.

A failure at any step leaves no partial file: the spool file is removed and renames made
before a failed commit are undone.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import threading
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)
from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from dicomnode.dimse import Status
from dicomnode.errors import OutOfSpace, StoreRejected
from dicomnode.store import files
from dicomnode.store.audit import AuditEntry, AuditKind, forward, record, record_core
from dicomnode.store.db import Database
from dicomnode.store.inspect import ReceivedHeader, read_header
from dicomnode.store.models import (
    CompletionState,
    Instance,
    Series,
    SeriesOrigin,
    Study,
    utcnow,
)
from dicomnode.store.uids import uid_problem

__all__ = ["INCOMING", "SUPERSEDED", "Store", "StoreOutcome", "StoreResult", "UidConflict"]

log = logging.getLogger(__name__)

#: Spool directory for partially received data (same filesystem: the final rename is atomic).
INCOMING = ".incoming"
#: Where a replaced version of an instance is kept until retention removes it.
SUPERSEDED = ".superseded"
_LOCK_STRIPES = 64
_ID_CACHE = 4096


#: The statements of every stored instance, built once (building one costs more than running
#: it on SQLite): the lookup of its SOP Instance UID, its row, the bump of its series and study.
#: They run on a Core connection: the ORM's session and unit of work cost more per instance
#: than the four statements and the commit together.
_FIND_INSTANCE = select(Instance.id, Instance.sha256, Instance.path).where(
    Instance.sop_instance_uid == bindparam("uid")
)
_INSERT_INSTANCE = insert(Instance)
_BUMP = {
    model: update(model)
    .where(model.id == bindparam("row_id"), model.state == CompletionState.OPEN)
    .values(last_received_at=bindparam("now"))
    for model in (Series, Study)
}


class StoreOutcome(str, enum.Enum):
    """What storing one instance did."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    SUPERSEDED = "superseded"


@dataclass(frozen=True)
class StoreResult:
    """The result of a successful :meth:`Store.ingest`."""

    outcome: StoreOutcome
    sop_instance_uid: str
    series_uid: str
    study_uid: str
    path: Path
    size: int


class UidConflict(StoreRejected):
    """A UID already stored under another study or series: refused, the first copy stays.

    A SOP Instance UID (or a Series Instance UID) names one object everywhere; the same UID
    under another parent is a sender's bug or a spoof, never a correction. Audited as a
    ``security.alert``.
    """

    def __init__(self, reason: str):
        super().__init__(Status.DATA_SET_DOES_NOT_MATCH_SOP_CLASS, reason)


@dataclass(frozen=True)
class _Received:
    header: ReceivedHeader
    sha256: str
    size: int
    rel: Path


@dataclass
class _Transaction:
    """One instance's transaction: its connection, the audit rows it wrote (forwarded once
    it commits) and the renames it made (reversed when it does not)."""

    sql: Connection
    audited: list[AuditEntry] = field(default_factory=list)
    undo: list[tuple[Path, Path]] = field(default_factory=list)

    def audit(
        self, kind: AuditKind, subject: str | None, peer: str | None, detail: str | None = None
    ) -> None:
        """Write an audit row in this transaction."""
        self.audited.append(record_core(self.sql, kind, subject=subject, peer=peer, detail=detail))


class Store:
    """The durable store rooted at ``root``, indexed in ``db``.

    Parameters
    ----------
    root : Path
        Store directory; created if missing.
    db : Database
        The state database (schema already migrated).
    min_free : int
        Bytes that must stay free on the store's filesystem; below it stores get 0xA700.
    """

    def __init__(self, root: Path, db: Database, *, min_free: int):
        self.root = root
        self.db = db
        self.min_free = int(min_free)
        self.incoming = root / INCOMING
        self.superseded = root / SUPERSEDED
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        #: series UID -> (series id, study id, study UID)
        self._ids: dict[str, tuple[int, int, str]] = {}
        root.mkdir(parents=True, exist_ok=True)
        self.incoming.mkdir(exist_ok=True)
        self.superseded.mkdir(exist_ok=True)
        #: Whether a new instance is stored with one flush (:meth:`_store_new`): where its
        #: file's fsync also makes its new name durable (ext4).
        self.one_flush = files.names_with_fsync(root)

    def forget_ids(self) -> None:
        """Drop cached series/study ids (after rows were deleted, e.g. by retention)."""
        self._ids.clear()

    def check_space(self) -> None:
        """Raise :class:`OutOfSpace` when free space is below ``min_free``."""
        free = files.free_bytes(self.root)
        if free < self.min_free:
            raise OutOfSpace(f"store has {free} bytes free, below storage.min_free")

    def ingest(
        self,
        spool: Path,
        *,
        sop_class_uid: str,
        sop_instance_uid: str,
        calling_ae: str | None = None,
        peer: str | None = None,
        origin: SeriesOrigin = SeriesOrigin.RECEIVED,
        study_uid: str | None = None,
    ) -> StoreResult:
        """Make a received Part 10 file durable and indexed; consumes ``spool`` in every case.

        Parameters
        ----------
        spool : Path
            The received file, on the store's filesystem (``<root>/.incoming``).
        sop_class_uid, sop_instance_uid : str
            Affected SOP Class/Instance UID of the C-STORE command; the dataset must agree.
        calling_ae : str, optional
            The sender's AE title, recorded with the instance.
        peer : str, optional
            ``AE@address`` for the audit trail.
        origin : SeriesOrigin
            Recorded on a series this instance creates: ``prior`` for instances the node
            retrieved itself (never routed, never exported); an existing series keeps its own.
        study_uid : str, optional
            The study the instance must belong to (STOW-RS ``/studies/{study}``): another
            Study Instance UID is refused with 0xA900.

        Raises
        ------
        StoreRejected
            With the DIMSE status to answer (0xA700, 0xA900, 0xC000).
        """
        try:
            self.check_space()
            received = self._inspect(spool, sop_class_uid, sop_instance_uid)
            if study_uid is not None and received.header.study_uid != study_uid:
                raise StoreRejected(
                    Status.DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
                    f"dataset StudyInstanceUID is not the request's study {study_uid}",
                )
            lock = self._locks[zlib.crc32(sop_instance_uid.encode()) % _LOCK_STRIPES]
            if self.one_flush:
                with lock:
                    stored = self._store_new(spool, received, calling_ae, peer, origin)
                if stored is not None:
                    return stored
            files.fsync_file(spool)
            with lock:
                return self._commit(spool, received, calling_ae, peer, origin)
        except UidConflict as exc:
            with self.db.session() as session:
                record(
                    session,
                    AuditKind.SECURITY_ALERT,
                    subject=sop_instance_uid,
                    peer=peer,
                    detail=f"refused: {exc.reason}",
                )
            raise
        except StoreRejected:
            raise
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OutOfSpace("store filesystem full") from None
            log.error(
                "store failed: %s", exc.strerror, extra={"sop_instance_uid": sop_instance_uid}
            )
            raise StoreRejected(Status.OUT_OF_RESOURCES, f"cannot write: {exc.strerror}") from None
        except SQLAlchemyError as exc:
            log.error("store index failed: %s", type(exc).__name__)
            raise StoreRejected(Status.OUT_OF_RESOURCES, "cannot index the instance now") from None
        finally:
            spool.unlink(missing_ok=True)

    def _inspect(self, spool: Path, sop_class: str, sop_instance: str) -> _Received:
        header = read_header(spool)
        for name, value in (
            ("SOPClassUID", header.sop_class_uid),
            ("SOPInstanceUID", header.sop_instance_uid),
            ("StudyInstanceUID", header.study_uid),
            ("SeriesInstanceUID", header.series_uid),
        ):
            problem = uid_problem(value)
            if problem:
                raise StoreRejected(Status.CANNOT_UNDERSTAND, f"dataset {name} is {problem}")
        for name, value in (("class", sop_class), ("instance", sop_instance)):
            problem = uid_problem(value)
            if problem:
                raise StoreRejected(
                    Status.CANNOT_UNDERSTAND, f"command SOP {name} UID is {problem}"
                )
        if header.sop_class_uid != sop_class:
            raise StoreRejected(
                Status.DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
                "dataset SOPClassUID differs from the C-STORE command (STOW-RS: file meta)",
            )
        if header.sop_instance_uid != sop_instance:
            raise StoreRejected(
                Status.DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
                "dataset SOPInstanceUID differs from the C-STORE command (STOW-RS: file meta)",
            )
        assert header.study_uid and header.series_uid  # checked above
        rel = Path(header.study_uid) / header.series_uid / f"{sop_instance}.dcm"
        sha, size = files.sha256_of(spool)
        return _Received(header=header, sha256=sha, size=size, rel=rel)

    def _store_new(
        self,
        spool: Path,
        rx: _Received,
        calling_ae: str | None,
        peer: str | None,
        origin: SeriesOrigin,
    ) -> StoreResult | None:
        """Store a new instance with one flush; None when it is not new (its file or its row
        exists), with ``spool`` as it was, for :meth:`_commit`.

        The spool file is renamed into place, never over a file, marked with its content's
        SHA-256 (:func:`files.rename_new`), then fsync'd: on ext4 that one flush makes its data
        and its new name durable (:func:`files.names_with_fsync`, which cites the kernel's
        documentation). Its row is committed only after that, so every row names a complete
        file, and Success follows the commit: an acknowledged instance is on disk, file and
        name, as with :meth:`_commit`'s two flushes. A power loss before the fsync returned
        can leave the name with torn content (ext4 orders no data before names), for an
        instance without a row whose sender never heard Success: recovery indexes such a
        file only when its content still hashes to the recorded value
        (:mod:`dicomnode.store.recovery`). A kill -9 leaves the page cache whole: the file is
        complete and indexed at recovery, as a rename before a commit always was.
        """
        final = self.root / rx.rel
        files.make_dirs(final.parent, self.root)
        if not files.rename_new(spool, final, rx.sha256):
            return None
        try:
            files.fsync_file(final)
            with self.db.engine.begin() as sql:
                tx = _Transaction(sql)
                if sql.execute(_FIND_INSTANCE, {"uid": rx.header.sop_instance_uid}).first():
                    raise _NotNew
                values = self._values(rx, self._touch(tx, rx.header, peer, origin), calling_ae)
                sql.execute(_INSERT_INSTANCE, values)
                if not final.is_file():  # its study was moved away by retention meanwhile
                    raise _NotNew
        except _NotNew:
            self._ids.clear()  # the transaction may have created rows that are now gone
            files.rename(final, spool)
            return None
        except BaseException:
            self._ids.clear()
            self._drop_unindexed(final, rx)
            raise
        forward(tx.audited)
        return self._result(StoreOutcome.STORED, rx)

    def _drop_unindexed(self, final: Path, rx: _Received) -> None:
        """Remove a file :meth:`_store_new` put in place when its commit failed, unless a row
        names it after all (recovery of a dead SCP process indexed it meanwhile); when the
        database cannot tell, the file stays for recovery (which checks its content hash)."""
        try:
            with self.db.engine.connect() as sql:
                row = sql.execute(_FIND_INSTANCE, {"uid": rx.header.sop_instance_uid}).first()
        except SQLAlchemyError:
            return
        if row is None or (row.path, row.sha256) != (rx.rel.as_posix(), rx.sha256):
            try:
                os.unlink(final)
            except OSError as exc:
                log.error("cannot remove a file after a failed commit: %s", exc.strerror)

    def _commit(
        self,
        spool: Path,
        rx: _Received,
        calling_ae: str | None,
        peer: str | None,
        origin: SeriesOrigin = SeriesOrigin.RECEIVED,
    ) -> StoreResult:
        """Index ``rx`` and rename it into place in one transaction, then sync its directory.

        The directory is synced after the commit, outside the transaction: on SQLite the
        transaction holds the database's write lock, and concurrent associations queued behind
        each other's fsync. The caller answers Success only after this returns, so an
        acknowledged instance is still durable, file and name. A power loss between commit and
        sync can leave a row whose file is gone, for an instance whose sender never heard
        Success (the row itself is then rarely durable: SQLite commits with
        ``synchronous=NORMAL``); re-sent, it replaces the missing file (:meth:`_supersede`).
        """
        final = self.root / rx.rel
        tx: _Transaction | None = None
        try:
            with self.db.engine.begin() as sql:
                tx = _Transaction(sql)
                outcome = self._index(tx, spool, rx, calling_ae, peer, origin)
        except BaseException:
            for done, back in reversed(tx.undo if tx else []):
                try:
                    files.durable_rename(done, back)
                except OSError as exc:
                    log.error("cannot undo a rename after a failed commit: %s", exc.strerror)
            self._ids.clear()  # the transaction may have created rows that are now gone
            raise
        assert tx is not None  # the transaction committed
        forward(tx.audited)
        files.fsync_dir(final.parent)  # a duplicate's too: its row may predate this sync
        return self._result(outcome, rx)

    def _index(
        self,
        tx: _Transaction,
        spool: Path,
        rx: _Received,
        calling_ae: str | None,
        peer: str | None,
        origin: SeriesOrigin,
    ) -> StoreOutcome:
        """The transaction of :meth:`_commit`: rows, supersede, rename (recorded in ``tx``)."""
        sql = tx.sql
        existing = sql.execute(_FIND_INSTANCE, {"uid": rx.header.sop_instance_uid}).first()
        if existing is not None and existing.path != rx.rel.as_posix():
            study, series = Path(existing.path).parts[:2]
            raise UidConflict(
                f"SOP Instance UID already stored in study {study} series {series}, "
                f"received in study {rx.header.study_uid} series {rx.header.series_uid}"
            )
        if existing is not None and self._unchanged(existing.sha256, existing.path, rx, spool):
            return StoreOutcome.DUPLICATE
        values = self._values(rx, self._touch(tx, rx.header, peer, origin), calling_ae)
        final = self.root / rx.rel
        files.make_dirs(final.parent, self.root)
        outcome = StoreOutcome.STORED
        if existing is not None:
            del values["sop_instance_uid"]
            outcome = self._supersede(tx, existing.path, existing.sha256, rx, peer)
            sql.execute(update(Instance).where(Instance.id == existing.id).values(**values))
        else:
            sql.execute(_INSERT_INSTANCE, values)
        files.rename(spool, final)  # synced by _commit once the transaction has committed
        tx.undo.append((final, spool))
        return outcome

    @staticmethod
    def _values(rx: _Received, series_id: int, calling_ae: str | None) -> dict[str, object]:
        """The instance row of ``rx``."""
        return {
            "sop_instance_uid": rx.header.sop_instance_uid,
            "series_id": series_id,
            "sop_class_uid": rx.header.sop_class_uid,
            "transfer_syntax_uid": rx.header.transfer_syntax_uid,
            "path": rx.rel.as_posix(),
            "size": rx.size,
            "sha256": rx.sha256,
            "calling_ae": calling_ae,
            "received_at": utcnow(),
        }

    def _unchanged(self, sha256: str, path: str, rx: _Received, spool: Path) -> bool:
        """Whether a re-sent instance equals the stored one: same bytes, or same content.

        A sender may re-send an instance in another transfer syntax (implicit instead of
        explicit VR, or RLE instead of native, say): different bytes, same image. See
        :func:`same_content`; anything else that differs in bytes counts as changed.
        """
        old = self.root / path
        if not old.is_file():
            return False
        if sha256 == rx.sha256:
            return True
        return same_content(old, spool)

    def _supersede(
        self, tx: _Transaction, old_path: str, old_sha256: str, rx: _Received, peer: str | None
    ) -> StoreOutcome:
        old = self.root / old_path
        if not old.is_file():
            tx.audit(
                AuditKind.INSTANCE_RECOVERED,
                rx.header.sop_instance_uid,
                peer,
                "indexed file was missing; replaced by the received copy",
            )
            return StoreOutcome.STORED
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
        kept = self.superseded / Path(old_path).with_suffix(f".{stamp}.dcm")
        files.make_dirs(kept.parent, self.superseded)
        files.durable_rename(old, kept)
        tx.undo.append((kept, old))
        tx.audit(
            AuditKind.INSTANCE_SUPERSEDED,
            rx.header.sop_instance_uid,
            peer,
            f"old sha256 {old_sha256} kept as {kept.relative_to(self.root)}",
        )
        return StoreOutcome.SUPERSEDED

    def _touch(
        self,
        tx: _Transaction,
        header: ReceivedHeader,
        peer: str | None,
        origin: SeriesOrigin = SeriesOrigin.RECEIVED,
    ) -> int:
        """Record an arrival in its series and study (creating or re-opening them).

        The ids of known series are cached, so the usual instance costs two UPDATEs; a
        series or study that was complete is re-opened, with an audit row, also when this
        process has not seen the series before (another SCP process received it, or the
        node restarted).
        """
        assert header.series_uid and header.study_uid
        now = utcnow()
        ids = self._ids.get(header.series_uid)
        if ids is not None and ids[2] != header.study_uid:
            raise _series_conflict(header, ids[2])
        if ids is None:  # new here: perhaps not in the database (another SCP process's)
            ids = self._create(tx, header, now, peer, origin)
        if not self._bump(tx.sql, Series, ids[0], now):
            self._reopen(tx, Series, ids[0], now, header.series_uid, peer)
            ids = self._ids.get(header.series_uid) or self._create(tx, header, now, peer, origin)
        if not self._bump(tx.sql, Study, ids[1], now):
            self._reopen(tx, Study, ids[1], now, header.study_uid, peer)
        return ids[0]

    @staticmethod
    def _bump(
        sql: Connection, model: type[Series] | type[Study], row_id: int, now: datetime
    ) -> bool:
        """Move ``last_received_at`` of an open row; False when the row is not open."""
        result = sql.execute(_BUMP[model], {"row_id": row_id, "now": now})
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def _reopen(
        self,
        tx: _Transaction,
        model: type[Series] | type[Study],
        row_id: int,
        now: datetime,
        uid: str,
        peer: str | None,
    ) -> None:
        result = tx.sql.execute(
            update(model)
            .where(model.id == row_id, model.state == CompletionState.COMPLETE)
            .values(state=CompletionState.OPEN, last_received_at=now)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            kind = AuditKind.SERIES_REOPENED if model is Series else AuditKind.STUDY_REOPENED
            tx.audit(kind, uid, peer)
        else:  # the row is gone (retention): look it up afresh
            self._ids.clear()

    def _create(
        self,
        tx: _Transaction,
        header: ReceivedHeader,
        now: datetime,
        peer: str | None,
        origin: SeriesOrigin = SeriesOrigin.RECEIVED,
    ) -> tuple[int, int, str]:
        """Ids of the header's series and study, inserting them when new.

        Raises
        ------
        UidConflict
            The series exists under another study.
        """
        _insert_ignore(
            tx.sql,
            Study,
            study_uid=header.study_uid,
            first_received_at=now,
            last_received_at=now,
            state=CompletionState.OPEN,
            completions=0,
        )
        study_id = tx.sql.scalar(select(Study.id).where(Study.study_uid == header.study_uid))
        created = _insert_ignore(
            tx.sql,
            Series,
            series_uid=header.series_uid,
            study_id=study_id,
            modality=(header.modality or None) and header.modality[:16],
            series_number=header.series_number,
            description=(header.series_description or None) and header.series_description[:64],
            first_received_at=now,
            last_received_at=now,
            state=CompletionState.OPEN,
            completions=0,
            origin=origin.value,
        )
        row = tx.sql.execute(
            select(Series.id, Series.study_id, Study.study_uid)
            .join(Study, Study.id == Series.study_id)
            .where(Series.series_uid == header.series_uid)
        ).one()
        if row.study_uid != header.study_uid:
            raise _series_conflict(header, row.study_uid)
        if created:
            tx.audit(
                AuditKind.SERIES_RECEIVED,
                header.series_uid,
                peer,
                f"study {header.study_uid}" + (" (prior)" if origin is SeriesOrigin.PRIOR else ""),
            )
        ids = (int(row.id), int(row.study_id), str(row.study_uid))
        if len(self._ids) >= _ID_CACHE:
            self._ids.clear()
        self._ids[str(header.series_uid)] = ids
        return ids

    def _result(self, outcome: StoreOutcome, rx: _Received) -> StoreResult:
        return StoreResult(
            outcome=outcome,
            sop_instance_uid=str(rx.header.sop_instance_uid),
            series_uid=str(rx.header.series_uid),
            study_uid=str(rx.header.study_uid),
            path=self.root / rx.rel,
            size=rx.size,
        )


class _NotNew(Exception):
    """Raised inside :meth:`Store._store_new`'s transaction: the instance is not new there."""


def _series_conflict(header: ReceivedHeader, stored_study: str) -> UidConflict:
    return UidConflict(
        f"Series Instance UID {header.series_uid} already stored in study {stored_study}, "
        f"received in study {header.study_uid}"
    )


_NATIVE = {ImplicitVRLittleEndian, ExplicitVRLittleEndian}
#: Lossless compressed syntaxes whose decoded pixels may stand for the native ones (deflate is
#: refused at negotiation anyway).
_LOSSLESS = {
    RLELossless,
    JPEGLSLossless,
    JPEG2000Lossless,
    JPEGLossless,
    JPEGLosslessSV1,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
}
_COMPARE_LIMIT = 64 * 1024 * 1024
_PIXEL_DATA = 0x7FE00010


def same_content(a: Path, b: Path) -> bool:
    """Whether two Part 10 files hold the same image: same data set, same pixels.

    Native little-endian files are compared element by element. When either is in a lossless
    compressed syntax (RLE, JPEG-LS, JPEG 2000 or JPEG lossless), the headers are compared
    without their Pixel Data and the decoded pixels are compared: a sender that re-sends an
    image in another lossless syntax sends the same image. Bounded: files of at most 64 MB and
    decoded pixels of at most 64 MB (checked from the header before decoding); larger files,
    lossy or unknown syntaxes, files that cannot be decoded here and values that cannot be
    compared count as different.
    """
    if max(a.stat().st_size, b.stat().st_size) > _COMPARE_LIMIT:
        return False
    try:
        first, second = dcmread(a), dcmread(b)
    except Exception:  # an unreadable file is never "the same"
        return False
    syntaxes = {first.file_meta.TransferSyntaxUID, second.file_meta.TransferSyntaxUID}
    try:
        if not syntaxes - _NATIVE:
            return bool(first == second)
        if syntaxes - _NATIVE - _LOSSLESS:
            return False
        return _same_image(first, second)
    except Exception:  # values decode lazily: a hostile one (or deep nesting) is "different"
        return False


def _same_image(first: Dataset, second: Dataset) -> bool:
    """Same header but Pixel Data, and the same decoded pixels (within the decode bound)."""
    if _PIXEL_DATA not in first or _PIXEL_DATA not in second:
        return False
    header_a, header_b = Dataset(dict(first._dict)), Dataset(dict(second._dict))
    del header_a[_PIXEL_DATA], header_b[_PIXEL_DATA]
    if header_a != header_b:
        return False
    declared = (
        int(first.Rows)
        * int(first.Columns)
        * int(first.get("NumberOfFrames", 1) or 1)
        * int(first.get("SamplesPerPixel", 1))
        * int(first.BitsAllocated)
        // 8
    )
    if declared > _COMPARE_LIMIT:
        return False
    return bool(np.array_equal(first.pixel_array, second.pixel_array))


def _insert_ignore(sql: Connection, model: type[Study] | type[Series], **values: object) -> bool:
    """INSERT … ON CONFLICT DO NOTHING on the model's unique UID; whether a row was added."""
    insert = pg_insert if sql.dialect.name == "postgresql" else sqlite_insert
    result = sql.execute(insert(model).values(**values).on_conflict_do_nothing())
    return bool(result.rowcount)  # type: ignore[attr-defined]
