"""The Alembic migrations create exactly the schema the models describe (both backends)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import dicomnode.jobs.models  # noqa: F401 - the queue tables
import dicomnode.notify.models  # noqa: F401 - the notification outbox
from dicomnode.store.models import Base


def test_migrations_match_the_models(database):
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    tables = set(inspect(database.engine).get_table_names())
    assert {"jobs", "job_results", "deliveries", "studies", "series", "instances"} <= tables
