"""What a node process secures before it starts: a private umask, its data dir (mode 0700,
writable, held by one node at a time), a writable store and free listening ports.

Each failure is a :class:`StartupError` whose message is one line naming the data dir, store,
port or database concerned; the CLI prints it and exits with status 2.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import stat
from pathlib import Path

from sqlalchemy.engine import make_url

from dicomnode.errors import DicomNodeError

__all__ = [
    "LOCK_NAME",
    "PRIVATE_UMASK",
    "DataDirLock",
    "StartupError",
    "creatable",
    "ensure_port_free",
    "first_line",
    "port_problem",
    "prepare_data_dir",
    "private_umask",
    "probe_writable",
    "shown_url",
    "sqlite_file",
    "tighten",
]

log = logging.getLogger(__name__)

#: Files and folders the node creates are readable by its own user only (0600 / 0700).
PRIVATE_UMASK = 0o077
#: The lock file in the data dir; its text is the holder's PID, for the error message only.
LOCK_NAME = "dicomnode.lock"


class StartupError(DicomNodeError):
    """The node cannot start: its data dir is held by another node or not writable, a port is
    taken, the store is read-only or the database unreachable (one line naming which)."""


def private_umask() -> int:
    """Set the process umask to 0o077 (whatever the caller's); returns the previous one."""
    return os.umask(PRIVATE_UMASK)


def first_line(text: str) -> str:
    """The first non-empty line of ``text`` (driver errors span several lines)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), text.strip())


def tighten(path: Path, mode: int) -> None:
    """Remove group and other permissions from ``path`` if we own it and it has any."""
    st = os.stat(path, follow_symlinks=False)
    if st.st_uid != os.geteuid() or stat.S_ISLNK(st.st_mode):
        return
    current = stat.S_IMODE(st.st_mode)
    if current & ~mode & 0o077:
        os.chmod(path, current & mode)
        log.warning("permissions tightened", extra={"path": str(path), "mode": oct(current & mode)})


def probe_writable(directory: Path) -> None:
    """Create, fsync and remove a file in ``directory``; raises ``OSError`` if it cannot."""
    probe = directory / f".probe-{os.getpid()}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, b"probe")
        os.fsync(fd)
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)


def prepare_data_dir(path: Path, what: str = "data dir") -> None:
    """Create ``path`` with mode 0700 (tightening an existing one) and check writes.

    Used for the data dir and the store (``what`` names it in the error).

    Raises
    ------
    StartupError
        When it cannot be created or written (read-only filesystem, permissions, a file in
        the way).
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        tighten(path, 0o700)
        probe_writable(path)
    except OSError as exc:
        raise StartupError(f"{what} {path} is not writable: {exc.strerror or exc}") from None


def creatable(path: Path) -> str | None:
    """Why ``path`` (a file or folder that does not exist yet) could not be created, or
    ``None``: its nearest existing ancestor must be a folder we may write to."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{parent} is not writable"
    return None


def sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite URL; ``None`` for other backends and ``:memory:``."""
    try:
        parsed = make_url(url)
    except Exception:  # an invalid URL is open_database's to report
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def shown_url(url: str) -> str:
    """``url`` as it may be shown: its password masked (the URL itself if it is invalid)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an invalid URL has no parts to mask; open_database reports it
        return "database.url (invalid)"


def port_problem(host: str, port: int) -> str | None:
    """Why a server could not listen on ``host:port`` now, or ``None`` when it could.

    Binds a socket as the node's servers do (``SO_REUSEADDR``, so connections in TIME_WAIT
    do not count) and closes it at once.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve {host}: {exc.strerror}"
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return str(exc.strerror or exc)
    return None


def ensure_port_free(what: str, host: str, port: int) -> None:
    """Raise :class:`StartupError` naming the ``what`` socket (DICOM, HTTP) and its port
    when ``host:port`` cannot be listened on; port 0 (any free port) always can."""
    if port == 0:
        return
    problem = port_problem(host, port)
    if problem is not None:
        raise StartupError(f"{what} port {port} on {host}: {problem}")


class DataDirLock:
    """An exclusive ``flock`` on ``<data_dir>/dicomnode.lock``, held while the node runs.

    The lock, not the file, is the truth: a file left behind by a killed node does not block
    (the kernel dropped its lock), and the file's text (the holder's PID) serves only the
    error message.

    Parameters
    ----------
    data_dir : Path
        The node's data dir (must exist).
    """

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and write our PID into the file.

        Raises
        ------
        StartupError
            When another process holds it (naming its PID) or the file cannot be opened.
        """
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise StartupError(f"cannot open {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise StartupError(
                f"data dir {self.data_dir} is in use by another dicomnode process "
                f"(PID {holder or 'unknown'}); one node per data dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (the file stays; the next holder overwrites it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode("ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
