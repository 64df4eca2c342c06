"""Alembic environment: runs on the connection handed over by ``Database.upgrade``."""

from alembic import context

import dicomnode.jobs.models  # noqa: F401  (registers the queue tables on Base.metadata)
import dicomnode.notify.models  # noqa: F401  (the notification outbox)
from dicomnode.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the node always passes its connection
    raise RuntimeError("run migrations through dicomnode.store.db.Database.upgrade()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
