"""completion signals: series.completed_by, studies.completed_by

Which signal judged the latest completion (timer, storage commitment, MPPS, C-FIND
confirmation, required inputs). Completions before this migration all came from the timer.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TABLES = ("series", "studies")
_UPDATES = (
    "UPDATE series SET completed_by = 'timer' WHERE completions > 0",
    "UPDATE studies SET completed_by = 'timer' WHERE completions > 0",
)


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("completed_by", sa.String(16), nullable=True))
    for statement in _UPDATES:
        op.execute(statement)


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("completed_by")
