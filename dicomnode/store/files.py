"""Durable filesystem operations: fsync'd renames, directory syncs, hashing, free space, and
the one-flush naming of a new file on ext4 (:func:`rename_new`, :func:`names_with_fsync`)."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import shutil
from pathlib import Path

__all__ = [
    "CONTENT_SHA256",
    "content_mark",
    "durable_rename",
    "fsync_dir",
    "fsync_file",
    "free_bytes",
    "fs_type",
    "rename_new",
    "make_dirs",
    "names_with_fsync",
    "rename",
    "sha256_of",
]

#: Extended attribute holding the SHA-256 (hex) of a file's content, set by :func:`rename_new`
#: before the file gets its name in the store: the content that name must hold.
CONTENT_SHA256 = "user.dicomnode.sha256"


def fsync_file(path: Path) -> None:
    """Flush a file's data and metadata to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a directory (its entries: creations, renames) to stable storage."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path, root: Path) -> None:
    """Create ``path`` and its missing parents below ``root``, syncing each new entry."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current == root or current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        fsync_dir(directory.parent)


def rename(src: Path, dst: Path) -> None:
    """Atomically move ``src`` to ``dst``; durable once ``dst``'s directory is synced."""
    os.replace(src, dst)


def durable_rename(src: Path, dst: Path) -> None:
    """Atomically move ``src`` (already fsync'd) to ``dst`` and sync the target directory."""
    rename(src, dst)
    fsync_dir(dst.parent)


def sha256_of(path: Path) -> tuple[str, int]:
    """SHA-256 hex digest and size of a file, read in chunks into one reused buffer."""
    with open(path, "rb", buffering=0) as fh:
        digest = hashlib.file_digest(fh, "sha256")
        return digest.hexdigest(), fh.tell()


def free_bytes(path: Path) -> int:
    """Free bytes available to an unprivileged user on the filesystem holding ``path``."""
    return shutil.disk_usage(path).free


def fs_type(path: Path) -> str | None:
    """The type of the filesystem holding ``path`` (``ext4``, ``xfs``...), by its device in
    ``/proc/self/mountinfo``; None when it cannot be told.

    The kernel's name of the driver, not ``statfs``'s magic number: ext2, ext3 and ext4 share
    one magic (0xEF53), and only the ext4 driver's fsync is what :func:`names_with_fsync`
    relies on.
    """
    try:
        dev = os.stat(path).st_dev
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    device = f"{os.major(dev)}:{os.minor(dev)}"
    for line in lines:
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        if len(parts) > 2 and parts[2] == device and rest:
            return rest.split()[0]
    return None


def names_with_fsync(path: Path) -> bool:
    """Whether an fsync of a file newly named on ``path``'s filesystem makes the name durable too.

    True on ext4, with or without a journal. With one, the rename is a metadata change in a
    jbd2 transaction that also updates the file's inode (its ctime); the fsync commits that
    transaction (or a later one), and the journal "can be replayed all the way to the latest
    commit record, guaranteeing the atomicity of whatever gets written through the journal"
    (Documentation/filesystems/ext4/journal.rst; with fast commits, a rename is among the
    directory-entry updates a fast commit records). Without a journal, ext4's fsync of "a
    just-created file" also syncs "our parent directory (...) since otherwise it will only be
    written by writeback" (fs/ext4/fsync.c, ``ext4_sync_parent``; ``ext4_rename`` adds the new
    entry with ``ext4_add_entry``, which marks the inode as newly added to its directory).
    Elsewhere the store syncs the directory as POSIX asks.

    Neither mode orders the file's data before its name: "file data blocks are /not/
    guaranteed to be in any consistent state after a crash" (journal.rst), hence the content
    hash that :func:`rename_new` records for recovery to check.
    """
    return fs_type(path) == "ext4"


def rename_new(src: Path, dst: Path, sha256: str) -> bool:
    """Move ``src`` to ``dst`` if ``dst`` is free, marked with its content hash.

    The hash goes into the :data:`CONTENT_SHA256` extended attribute first; the rename never
    replaces a file (``renameat2`` with ``RENAME_NOREPLACE``: another SCP process may have
    stored the same instance meanwhile). Not durable until ``dst`` is fsync'd
    (:func:`names_with_fsync`).

    Returns
    -------
    bool
        False when ``dst`` exists, or the filesystem keeps no extended attributes or cannot
        rename without replacing; nothing has changed then but, in the second case, a
        useless attribute.
    """
    try:
        os.setxattr(src, CONTENT_SHA256, sha256.encode())
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return False
        raise
    if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _NOREPLACE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EEXIST, errno.EINVAL, errno.ENOSYS):
        return False
    raise OSError(code, os.strerror(code), str(src), None, str(dst))


_AT_FDCWD = -100
_NOREPLACE = 1  # RENAME_NOREPLACE, linux/fs.h
_renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
_renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
_renameat2.restype = ctypes.c_int


def content_mark(path: Path) -> str | None:
    """The content hash :func:`rename_new` recorded on ``path``; None for a file without one."""
    try:
        return os.getxattr(path, CONTENT_SHA256).decode()
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
        raise
