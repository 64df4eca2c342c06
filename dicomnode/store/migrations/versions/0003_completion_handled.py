"""completions handed on: series.handled, studies.handled

A completion is committed on its own (short) transaction; ``handled`` says which completion
the hooks (routing and queuing) have acted on. Rows that exist before this migration were
routed in the completion's own transaction, so they start handled.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TABLES = ("series", "studies")
_UPDATES = ("UPDATE series SET handled = completions", "UPDATE studies SET handled = completions")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("handled", sa.Integer(), nullable=False, server_default="0"))
    for statement in _UPDATES:
        op.execute(statement)


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("handled")
