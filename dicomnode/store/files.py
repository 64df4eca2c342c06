"""Durable filesystem operations: fsync'd renames, directory syncs, hashing, free space."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

__all__ = [
    "durable_rename",
    "fsync_dir",
    "fsync_file",
    "free_bytes",
    "make_dirs",
    "rename",
    "sha256_of",
]


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
