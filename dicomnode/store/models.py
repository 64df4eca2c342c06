"""SQLAlchemy models of the node's state: studies, series, instances and the audit trail.

The schema is created and upgraded only by the Alembic migrations in
``dicomnode/store/migrations``; a test checks the two agree.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "AuditEvent",
    "Base",
    "CompletionSignal",
    "CompletionState",
    "Instance",
    "PerformedProcedureStep",
    "Series",
    "SeriesOrigin",
    "Study",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the only kind of time stored)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A DateTime stored naive-UTC and returned timezone-aware on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use dicomnode.store.models.utcnow()")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class CompletionState(str, enum.Enum):
    """Whether a series (study) may still receive instances or has been judged complete."""

    OPEN = "open"
    COMPLETE = "complete"


class CompletionSignal(str, enum.Enum):
    """What judged a series (study) complete."""

    TIMER = "timer"  # no instance for the quiet period
    COMMITMENT = "commitment"  # a Storage Commitment request listed every instance
    MPPS = "mpps"  # a COMPLETED Modality Performed Procedure Step listed them
    CONFIRM = "confirm"  # the source's C-FIND counts equal ours
    INPUTS = "inputs"  # every required input of a study-level route is complete


class SeriesOrigin(str, enum.Enum):
    """How a series came to the node."""

    RECEIVED = "received"  # sent to the node: routed, analysed
    PRIOR = "prior"  # retrieved by the node as a prior: never routed, never exported


_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with deterministic constraint names (for migrations)."""

    metadata = MetaData(naming_convention=_NAMING)


_state = Enum(
    CompletionState,
    name="completion_state",
    values_callable=lambda e: [m.value for m in e],
    native_enum=False,
    length=16,
)


class Study(Base):
    """A study the node has received instances of."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[CompletionState] = mapped_column(_state, default=CompletionState.OPEN)
    first_received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completions: Mapped[int] = mapped_column(Integer, default=0)
    #: The signal of the latest completion (a :class:`CompletionSignal` value).
    completed_by: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: The completion the completion hooks have acted on (queued its jobs); below
    #: ``completions`` while a completion waits for them (see :mod:`dicomnode.store.stability`).
    handled: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    series: Mapped[list[Series]] = relationship(back_populates="study")

    __table_args__ = (Index("ix_studies_state_last", "state", "last_received_at"),)


class Series(Base):
    """A series; ``completions`` counts how often it was judged complete (re-opens add one)."""

    __tablename__ = "series"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    series_uid: Mapped[str] = mapped_column(String(64), unique=True)
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    series_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    description: Mapped[str | None] = mapped_column(String(64), nullable=True)
    state: Mapped[CompletionState] = mapped_column(_state, default=CompletionState.OPEN)
    first_received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completions: Mapped[int] = mapped_column(Integer, default=0)
    #: The signal of the latest completion (a :class:`CompletionSignal` value).
    completed_by: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: The completion the completion hooks have acted on (queued its jobs); below
    #: ``completions`` while a completion waits for them (see :mod:`dicomnode.store.stability`).
    handled: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: A :class:`SeriesOrigin` value: priors complete, but no route runs on them.
    origin: Mapped[str] = mapped_column(
        String(16), default=SeriesOrigin.RECEIVED.value, server_default="received"
    )

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(back_populates="series")

    __table_args__ = (Index("ix_series_state_last", "state", "last_received_at"),)


class Instance(Base):
    """A stored instance: where its file is and what it was when acknowledged."""

    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(255), doc="relative to the store root")
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    calling_ae: Mapped[str | None] = mapped_column(String(16), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    series: Mapped[Series] = relationship(back_populates="instances")


class PerformedProcedureStep(Base):
    """A Modality Performed Procedure Step (MPPS) a modality created and updated.

    ``expected`` is what its Performed Series Sequence references (a JSON list of SOP Instance
    UIDs); once it is COMPLETED and every one of them is stored, their series complete and
    ``settled_at`` is set (also when it is DISCONTINUED: then the timers decide).
    """

    __tablename__ = "mpps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    calling_ae: Mapped[str | None] = mapped_column(String(16), nullable=True)
    expected: Mapped[str] = mapped_column(Text, default="[]")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditEvent(Base):
    """One recorded state change or security-relevant event. Never holds patient identifiers."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(48), index=True)
    subject: Mapped[str | None] = mapped_column(String(64), nullable=True)
    peer: Mapped[str | None] = mapped_column(String(80), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
