"""mpps: Modality Performed Procedure Steps, a completion signal

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mpps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sop_instance_uid", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("calling_ae", sa.String(16), nullable=True),
        sa.Column("expected", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("settled_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mpps")),
        sa.UniqueConstraint("sop_instance_uid", name=op.f("uq_mpps_sop_instance_uid")),
    )


def downgrade() -> None:
    op.drop_table("mpps")
