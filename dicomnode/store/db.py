"""The state database: engine set-up (SQLite WAL or PostgreSQL), migrations and sessions."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dicomnode.errors import DatabaseError

__all__ = ["Database", "open_database"]

log = logging.getLogger(__name__)
_MIGRATIONS = Path(__file__).with_name("migrations")


class Database:
    """An engine plus a session factory; ``session()`` is a transaction scope.

    Parameters
    ----------
    engine : Engine
        A configured engine (see :func:`open_database`).
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        """Whether the backend is SQLite (one process per database)."""
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on normal exit and rolls back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (creates it on an empty database)."""
        with self.engine.begin() as connection:
            cfg = _alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")

    def schema_is_current(self) -> bool:
        """Whether the database is at the newest migration."""
        head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision() == head

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE: a deferred transaction that reads
    # and then writes fails at once with SQLITE_BUSY when another connection wrote meanwhile.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL: a commit survives a crash of the process; after a power loss the last commits
    # may be lost, but every acknowledged instance's file was fsync'd (with its directory)
    # before the commit, and start-up recovery indexes files the DB lacks. FULL would add an
    # fsync of the WAL to every stored instance for nothing the store needs.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def open_database(url: str, *, migrate: bool = True) -> Database:
    """Open the state database at ``url``.

    SQLite files are created (with their directory) and put in WAL mode with full
    synchronisation; every transaction takes the write lock up front (``BEGIN IMMEDIATE``).

    Parameters
    ----------
    url : str
        SQLAlchemy URL, e.g. ``sqlite:////var/lib/dicomnode/state.db`` or
        ``postgresql+psycopg://user:pw@host/db``.
    migrate : bool
        Upgrade the schema to the newest migration.

    Raises
    ------
    DatabaseError
        When the database cannot be opened or migrated.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError, ValueError...
        raise DatabaseError(f"database.url is not a valid URL: {exc}") from None
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    try:
        engine = create_engine(parsed, **kwargs)
    except Exception as exc:
        raise DatabaseError(f"cannot open {parsed.render_as_string()}: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    db = Database(engine)
    if migrate:
        try:
            db.upgrade()
        except SQLAlchemyError as exc:
            engine.dispose()
            raise DatabaseError(f"cannot migrate {parsed.render_as_string()}: {exc}") from None
    return db
