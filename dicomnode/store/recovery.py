"""Start-up recovery and consistency checks of the store against the database.

After a crash the store can hold: spool files of interrupted transfers (removed), files
renamed into place whose DB commit never happened (their sender got no Success; indexed when
complete, below), and the halves of an interrupted supersede: the acknowledged copy moved to
``.superseded`` while the row still names it, the unacknowledged new copy in its place (the
acknowledged copy is put back). A DB row whose file is missing is reported, never silently
dropped: an acknowledged instance lost, or, after a power loss between an instance's commit and
the sync of its directory, one whose sender never heard Success (a re-send replaces the
missing file).

A file renamed into place without a row is indexed only when it is known complete: renamed
after its fsync (the two-flush order, no mark), or marked with the SHA-256 its content had
before the rename (the one-flush order on ext4, :meth:`Store._store_new`, where a power loss
before the fsync returned can leave the name with torn content) and hashing to it still. A
marked file whose content differs is quarantined, never indexed: its sender never heard
Success.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from sqlalchemy import select

from dicomnode.errors import OutOfSpace, StoreRejected
from dicomnode.store import files
from dicomnode.store.audit import AuditKind, record
from dicomnode.store.ingest import Store
from dicomnode.store.models import Instance
from dicomnode.store.uids import is_valid_uid

__all__ = ["RecoveryReport", "recover", "recover_interrupted", "sweep_incoming", "verify"]

log = logging.getLogger(__name__)
QUARANTINE = ".quarantine"
#: Seconds a file must stay unindexed to count as left by a dead process (a live one renames
#: a file into place and commits its row within milliseconds).
SETTLE = 2.0
#: Paths per ``IN (...)`` query.
_CHUNK = 500


@dataclass
class RecoveryReport:
    """What a recovery or verification pass found."""

    spool_removed: int = 0
    restored: int = 0
    indexed: int = 0
    quarantined: int = 0
    missing_files: list[str] = field(default_factory=list)
    unindexed_files: list[str] = field(default_factory=list)


def sweep_incoming(store: Store, *, older_than: float = 0.0) -> int:
    """Remove spool files older than ``older_than`` seconds (all of them at start-up)."""
    removed = 0
    cutoff = time.time() - older_than
    for entry in os.scandir(store.incoming):
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime <= cutoff:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def _stored_files(root: Path) -> list[Path]:
    """Paths (relative to ``root``) of ``<study>/<series>/<sop>.dcm`` files in the store."""
    found: list[Path] = []
    for study in os.scandir(root):
        if study.name.startswith(".") or not study.is_dir(follow_symlinks=False):
            continue
        for series in os.scandir(study.path):
            if not series.is_dir(follow_symlinks=False):
                continue
            for inst in os.scandir(series.path):
                if inst.name.endswith(".dcm") and inst.is_file(follow_symlinks=False):
                    found.append(Path(study.name) / series.name / inst.name)
    return found


def verify(store: Store) -> RecoveryReport:
    """Compare store and DB without changing anything (for ``dicomnode check``)."""
    report = RecoveryReport()
    with store.db.session() as session:
        indexed = set(session.scalars(select(Instance.path)))
    on_disk = {p.as_posix() for p in _stored_files(store.root)}
    report.unindexed_files = sorted(on_disk - indexed)
    report.missing_files = sorted(indexed - on_disk)
    return report


def recover(store: Store) -> RecoveryReport:
    """Start-up pass: clear the spool, index complete files the DB lacks, report lost rows."""
    restored = _restore_superseded(store)
    report = verify(store)
    report.restored = restored
    report.spool_removed = sweep_incoming(store)
    trash = store.root / ".trash"  # studies removed by retention just before a crash
    if trash.is_dir():
        shutil.rmtree(trash, ignore_errors=True)
    for rel in report.unindexed_files:
        path = store.root / rel
        if _index_orphan(store, path):
            report.indexed += 1
        else:
            report.quarantined += 1
    for rel in report.missing_files:
        log.error("indexed instance has no file", extra={"path": rel})
    if (
        report.spool_removed
        or report.restored
        or report.indexed
        or report.quarantined
        or report.missing_files
    ):
        log.warning(
            "recovery: %d spool files removed, %d superseded copies restored, %d files indexed, "
            "%d quarantined, %d indexed instances without a file",
            report.spool_removed,
            report.restored,
            report.indexed,
            report.quarantined,
            len(report.missing_files),
        )
    return report


def recover_interrupted(store: Store, *, since: float, settle: float = SETTLE) -> RecoveryReport:
    """Index the files a dead SCP process renamed into place but never committed, while the
    node's other SCP processes go on storing.

    Unlike :func:`recover` this leaves the spool and the superseded copies alone (live
    processes use them) and looks only at series folders changed since ``since``; a file
    counts as left behind when it is unindexed twice, ``settle`` seconds apart.

    Parameters
    ----------
    store : Store
        The store (this process's database connections).
    since : float
        When the dead process started (epoch seconds).
    settle : float
        Seconds between the two looks.
    """
    report = RecoveryReport()
    first = _unindexed_since(store, since)
    if not first:
        return report
    time.sleep(settle)
    for rel in sorted(first & _unindexed_since(store, since)):
        if _index_orphan(store, store.root / rel):
            report.indexed += 1
        else:
            report.quarantined += 1
    if report.indexed or report.quarantined:
        log.warning(
            "recovery after an SCP process ended: %d files indexed, %d quarantined",
            report.indexed,
            report.quarantined,
        )
    return report


def _unindexed_since(store: Store, since: float) -> set[str]:
    """Store files without a row in series folders changed since ``since`` (epoch s)."""
    found: list[str] = []
    for study in os.scandir(store.root):
        if study.name.startswith(".") or not study.is_dir(follow_symlinks=False):
            continue
        for series in os.scandir(study.path):
            try:
                if not series.is_dir(follow_symlinks=False) or series.stat().st_mtime < since:
                    continue
                found += [
                    f"{study.name}/{series.name}/{inst.name}"
                    for inst in os.scandir(series.path)
                    if inst.name.endswith(".dcm") and inst.is_file(follow_symlinks=False)
                ]
            except FileNotFoundError:  # removed meanwhile (retention)
                continue
    indexed: set[str] = set()
    with store.db.session() as session:
        for start in range(0, len(found), _CHUNK):
            chunk = found[start : start + _CHUNK]
            indexed.update(session.scalars(select(Instance.path).where(Instance.path.in_(chunk))))
    return set(found) - indexed


def _restore_superseded(store: Store) -> int:
    """Undo supersedes whose commit never happened (a crash after their renames).

    A re-sent, changed instance moves the stored copy to ``.superseded`` and renames the new
    one into place before its transaction commits. When the row's sha256 is still that of a
    kept copy and the file in place differs, the commit did not happen: the kept copy (the one
    its sender saw acknowledged) goes back. One hash per superseded instance and start-up.
    """
    kept: dict[str, list[Path]] = {}
    for path in sorted(store.superseded.rglob("*.dcm")):
        rel = path.relative_to(store.superseded)
        original = rel.parent / f"{rel.name.rsplit('.', 2)[0]}.dcm"  # <sop>.<stamp>.dcm
        if len(rel.parts) == 3 and is_valid_uid(original.stem):
            kept.setdefault(original.as_posix(), []).append(path)
    if not kept:
        return 0
    with store.db.session() as session:
        found = session.execute(
            select(Instance.path, Instance.sha256).where(Instance.path.in_(list(kept)))
        ).all()
    rows = {path: sha for path, sha in found}
    restored = 0
    for name, copies in kept.items():
        sha = rows.get(name)
        target = store.root / name
        if sha is None or (target.is_file() and files.sha256_of(target)[0] == sha):
            continue
        for copy in reversed(copies):  # the newest kept copy first
            if files.sha256_of(copy)[0] == sha:
                files.make_dirs(target.parent, store.root)
                files.durable_rename(copy, target)
                log.warning("interrupted supersede undone", extra={"path": name})
                restored += 1
                break
    return restored


def _index_orphan(store: Store, path: Path) -> bool:
    """Index a complete file left by a crash between rename and commit (or quarantine it)."""
    sop_uid = path.stem
    if not is_valid_uid(sop_uid):
        return _quarantine(store, path)
    mark = files.content_mark(path)
    if mark is not None and files.sha256_of(path)[0] != mark:
        log.error(
            "a file named before its fsync has torn content (power loss); quarantined",
            extra={"path": str(path)},
        )
        return _quarantine(store, path)
    spool = store.incoming / f"recover-{sop_uid}.dcm"
    try:
        os.replace(path, spool)
        sop_class = dcmread(spool, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        result = store.ingest(
            spool, sop_class_uid=str(sop_class.get("SOPClassUID", "")), sop_instance_uid=sop_uid
        )
    except OutOfSpace:
        os.replace(spool, path)  # indexed at a later start, when there is room
        return False
    except (StoreRejected, OSError, ValueError) as exc:
        log.error("cannot index a stored file: %s", exc, extra={"path": str(path)})
        if spool.exists():
            os.replace(spool, path)
        return _quarantine(store, path)
    with store.db.session() as session:
        record(
            session,
            AuditKind.INSTANCE_RECOVERED,
            subject=result.sop_instance_uid,
            detail="file present without index after a crash; indexed",
        )
    return True


def _quarantine(store: Store, path: Path) -> bool:
    target = store.root / QUARANTINE / path.relative_to(store.root)
    files.make_dirs(target.parent, store.root)
    files.durable_rename(path, target)
    return False
