"""series.origin: 'received' (sent to the node) or 'prior' (retrieved as a prior, issue 17)

Prior series complete like any series but no route runs on them and nothing of them is
exported. Rows that exist before this migration were received.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("series") as batch:
        batch.add_column(
            sa.Column("origin", sa.String(16), nullable=False, server_default="received")
        )


def downgrade() -> None:
    with op.batch_alter_table("series") as batch:
        batch.drop_column("origin")
