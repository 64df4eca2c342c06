"""pynetdicom's spool files for the node's associations: in the store's folder, named, owned.

With ``STORE_RECV_CHUNKED_DATASET`` pynetdicom 3.0.4 writes each received C-STORE data set to
a ``tempfile.NamedTemporaryFile`` in tempfile's default folder, and has no setting for another
one. The node needs those files on the store's filesystem (the final rename is atomic), and
must know which association owns which file (the reaper removes the others, PITFALLS: an abort
mid-transfer leaks the file). Rather than change tempfile's default for the whole process,
:func:`install` replaces the one name that pynetdicom's ``dimse_messages`` module calls: for an
association of an AE registered with :func:`register`, the file is created in that AE's
:class:`SpoolFolder` (a :class:`SpoolFile`: unbuffered, without tempfile's wrapper), named
``SPOOL_PREFIX…``, and recorded against the association; every other caller gets
``NamedTemporaryFile`` unchanged.

pynetdicom decodes DIMSE messages on the association's DUL thread (its ``assoc`` attribute
names the association), which is how the factory knows whose file it creates.
"""

from __future__ import annotations

import errno
import functools
import io
import itertools
import logging
import os
import tempfile
import threading
import weakref
from pathlib import Path
from typing import IO, Any

from pynetdicom import AE, dimse_messages
from pynetdicom.association import Association

from dicomnode.net import filemeta

__all__ = ["SPOOL_PREFIX", "SpoolFile", "SpoolFolder", "install", "register", "unregister"]

log = logging.getLogger(__name__)

#: File names of pynetdicom's spool files in a registered folder start with this.
SPOOL_PREFIX = "scp-"

_folders: weakref.WeakKeyDictionary[AE, SpoolFolder] = weakref.WeakKeyDictionary()
_folders_lock = threading.Lock()


class SpoolFile(io.FileIO):
    """A new, unbuffered file: what pynetdicom uses of a ``NamedTemporaryFile(delete=False)``.

    Created exclusively (``O_EXCL``), readable and writable by the owner only, as tempfile
    creates its files; ``name`` is its path as a string. Each write goes to the file at once
    (pynetdicom writes a whole PDV at a time and flushes after each).
    """

    _serial = itertools.count()

    @classmethod
    def create(cls, directory: Path, prefix: str, suffix: str = "") -> SpoolFile:
        """A new file in ``directory`` named ``prefix<serial>-<random><suffix>``."""
        while True:
            name = f"{prefix}{next(cls._serial)}-{os.urandom(4).hex()}{suffix}"
            try:
                return cls(str(directory / name), "xb", opener=_owner_only)
            except FileExistsError:
                continue

    def write(self, data: Any) -> int:
        """Write all of ``data`` (a raw write may write less), or raise (ENOSPC...)."""
        with memoryview(data) as view:
            total = done = view.nbytes
            with view.cast("B") as left:
                while done:
                    written = super().write(left[total - done :])
                    if not written:
                        raise OSError(errno.EIO, "the spool file took no bytes")
                    done -= written
        return total

    @property
    def file(self) -> SpoolFile:
        """The file itself (pynetdicom flushes ``file``; unbuffered, there is nothing to)."""
        return self


def _owner_only(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


class SpoolFolder:
    """The spool files of one AE's associations, in ``directory``.

    Parameters
    ----------
    directory : Path
        Where the files are created (on the store's filesystem).
    prefix : str
        Their names start with it: :data:`SPOOL_PREFIX`, followed by the process id where
        several SCP processes share ``directory`` (each reaps only its own).
    """

    def __init__(self, directory: Path, *, prefix: str = SPOOL_PREFIX):
        if not prefix.startswith(SPOOL_PREFIX):
            raise ValueError(f"spool file prefix {prefix!r} must start with {SPOOL_PREFIX!r}")
        self.directory = directory
        self.prefix = prefix
        self._files: dict[Association, list[IO[bytes]]] = {}
        self._lock = threading.Lock()

    def create(self, assoc: Association, **kwargs: Any) -> IO[bytes]:
        """A new spool file for ``assoc`` (``kwargs`` as pynetdicom passes them).

        pynetdicom asks for ``NamedTemporaryFile(delete=False, mode="wb", suffix=".dcm")``
        and uses ``write``, ``file.flush``, ``name`` and ``close``: a :class:`SpoolFile`
        does that without tempfile's wrapper (a new function for each method looked up)
        and random names; any other request gets a ``NamedTemporaryFile``.
        """
        spool: IO[bytes]
        if kwargs.keys() <= {"delete", "mode", "suffix"} and (
            kwargs.get("delete") is False and kwargs.get("mode") == "wb"
        ):
            spool = SpoolFile.create(self.directory, self.prefix, kwargs.get("suffix", ""))
        else:
            kwargs.update(dir=self.directory, prefix=self.prefix)
            spool = tempfile.NamedTemporaryFile(**kwargs)  # noqa: SIM115 (pynetdicom closes it)
        with self._lock:
            # a closed file is one that pynetdicom has handed to the handler and removed
            kept = [f for f in self._files.get(assoc, []) if not f.closed]
            self._files[assoc] = [*kept, spool]
        return spool

    def release_ended(self) -> None:
        """Close and forget the files of associations that have ended.

        An association that ended mid-transfer (abort, dropped connection, a DUL thread killed
        by a command it could not decode) leaves its spool file open: removing a file that is
        still open frees no space (seen: one ENOSPC mid-transfer kept a full disk full).
        """
        with self._lock:
            ended = [a for a in self._files if not a.is_alive()]
            files = [f for a in ended for f in self._files.pop(a)]
        for spool in files:
            if spool.closed:
                continue
            try:
                spool.close()
            except OSError:  # flushing buffered bytes onto a full disk
                log.debug("closing an abandoned spool file failed", exc_info=True)

    def owned(self) -> set[str]:
        """Names of the files that live associations are writing, queuing or storing."""
        with self._lock:
            return {
                Path(f.name).name
                for a, files in self._files.items()
                if a.is_alive()
                for f in files
                if not f.closed
            }

    def stale(self, *, older_than: float, now: float) -> list[str]:
        """Paths of spool files no live association owns, not modified for ``older_than`` s."""
        owned = self.owned()
        found: list[str] = []
        for entry in os.scandir(self.directory):
            if not entry.name.startswith(self.prefix) or entry.name in owned:
                continue
            try:
                if (
                    entry.is_file(follow_symlinks=False)
                    and entry.stat().st_mtime <= now - older_than
                ):
                    found.append(entry.path)
            except FileNotFoundError:
                continue
        return found


def register(ae: AE, folder: SpoolFolder) -> None:
    """Spool the data sets that ``ae``'s associations receive into ``folder``."""
    install()
    with _folders_lock:
        _folders[ae] = folder


def unregister(ae: AE) -> None:
    """Let ``ae``'s associations spool where pynetdicom would (tempfile's default folder)."""
    with _folders_lock:
        _folders.pop(ae, None)


def _folder_of_current_thread() -> tuple[Association, SpoolFolder] | None:
    assoc = getattr(threading.current_thread(), "assoc", None)
    if not isinstance(assoc, Association):
        return None
    with _folders_lock:
        folder = _folders.get(assoc.ae)
    return None if folder is None else (assoc, folder)


def _spool_file(**kwargs: Any) -> IO[bytes]:
    """``NamedTemporaryFile`` for pynetdicom: in the registered folder of the current AE."""
    found = _folder_of_current_thread()
    if found is None:
        return _NAMED_TEMPORARY_FILE(**kwargs)
    assoc, folder = found
    return folder.create(assoc, **kwargs)


_NAMED_TEMPORARY_FILE = tempfile.NamedTemporaryFile


@functools.cache
def install() -> None:
    """Route pynetdicom's spool files through :func:`_spool_file`, and their File Meta
    Information through :mod:`dicomnode.net.filemeta` (once per process)."""
    if dimse_messages.NamedTemporaryFile is not _NAMED_TEMPORARY_FILE:
        raise RuntimeError(
            "pynetdicom.dimse_messages.NamedTemporaryFile is not tempfile's: the pinned "
            "pynetdicom 3.0.4 is expected"
        )
    dimse_messages.NamedTemporaryFile = _spool_file  # type: ignore[assignment]
    filemeta.install()
