"""per-stage latency: job_stages

One row per stage of a job's timeline: last instance received, completion (with its signal),
queued, started, model ready, inference done, results written, each delivery acknowledged.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_stages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("detail", sa.String(length=96), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_job_stages_job_id_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_stages")),
    )
    with op.batch_alter_table("job_stages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_stages_job_id"), ["job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_stages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_stages_job_id"))
    op.drop_table("job_stages")
