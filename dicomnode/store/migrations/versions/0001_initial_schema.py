"""initial schema

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=True),
        sa.Column("peer", sa.String(length=80), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_kind"), ["kind"], unique=False)

    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column(
            "state",
            sa.Enum("open", "complete", name="completion_state", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("first_received_at", sa.DateTime(), nullable=False),
        sa.Column("last_received_at", sa.DateTime(), nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("completions", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studies")),
        sa.UniqueConstraint("study_uid", name=op.f("uq_studies_study_uid")),
    )
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.create_index("ix_studies_state_last", ["state", "last_received_at"], unique=False)

    op.create_table(
        "series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("series_uid", sa.String(length=64), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("series_number", sa.Integer(), nullable=True),
        sa.Column("description", sa.String(length=64), nullable=True),
        sa.Column(
            "state",
            sa.Enum("open", "complete", name="completion_state", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("first_received_at", sa.DateTime(), nullable=False),
        sa.Column("last_received_at", sa.DateTime(), nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("completions", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_series_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_series")),
        sa.UniqueConstraint("series_uid", name=op.f("uq_series_series_uid")),
    )
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.create_index("ix_series_state_last", ["state", "last_received_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_series_study_id"), ["study_id"], unique=False)

    op.create_table(
        "instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=False),
        sa.Column("transfer_syntax_uid", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("calling_ae", sa.String(length=16), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["series_id"], ["series.id"], name=op.f("fk_instances_series_id_series")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instances")),
        sa.UniqueConstraint("sop_instance_uid", name=op.f("uq_instances_sop_instance_uid")),
    )
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_instances_series_id"), ["series_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instances_series_id"))

    op.drop_table("instances")
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_series_study_id"))
        batch_op.drop_index("ix_series_state_last")

    op.drop_table("series")
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_index("ix_studies_state_last")

    op.drop_table("studies")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_kind"))
        batch_op.drop_index(batch_op.f("ix_audit_events_at"))

    op.drop_table("audit_events")
