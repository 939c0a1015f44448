"""The audit tables and the FHIR AuditEvent codes they store (action, outcome) as plain values.

`audit_event` holds the events, written with the action they record; `audit_chain` is the hash
chain over them, appended by the sealer (sealer.py); `audit_unsealed` is the queue of events not yet
chained, filled by a trigger on `audit_event`; `audit_event_group` finds the tenants and patients
of an event that covers several (a search page), which its hashed `entity_groups` names. Plain strings and integers rather than Enum
columns: the hash covers exactly what is stored, and a kind added later needs no migration.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from referral_service.kit.models import Base


class Action(enum.StrEnum):
    """FHIR R4 AuditEvent.action."""

    CREATE = "C"
    READ = "R"
    UPDATE = "U"
    DELETE = "D"
    EXECUTE = "E"


class Outcome(enum.IntEnum):
    """FHIR R4 AuditEvent.outcome."""

    SUCCESS = 0
    MINOR_FAILURE = 4  # the request was refused (4xx), or a consent decision denied sharing
    SERIOUS_FAILURE = 8  # SPIS failed (5xx)
    MAJOR_FAILURE = 12


class Kind(enum.StrEnum):
    """What happened; fhir_adapters.audit maps each to an AuditEvent type and subtype."""

    READ = "read"
    VREAD = "vread"
    HISTORY = "history"
    SEARCH = "search"
    CREATE = "create"
    UPDATE = "update"
    PATCH = "patch"
    DELETE = "delete"
    TRANSACTION = "transaction"
    BATCH = "batch"
    SHARE = "share"
    CONSENT_DECISION = "consent-decision"
    TOKEN = "token"  # noqa: S105 - an event kind, not a secret
    EXPORT = "export"
    # One attempt to deliver a notification to a Subscription's endpoint (deliveries/).
    DELIVERY = "delivery"
    # People in the web workspace (people/service.py): each step of a sign-in, refused or not
    # (a password, a second-factor code, a set-up link), a sign-out, and an operator adding,
    # disabling or re-issuing a set-up link for a person.
    SIGN_IN = "sign-in"
    SIGN_OUT = "sign-out"
    PERSON_ACCOUNT = "person-account"


class AuditEvent(Base):
    """One event. `seq` is insert order (a sequence; SQLite's rowid), with gaps where a
    transaction rolled back: no lock hands it out. The event's place in the hash chain is its
    `audit_chain` row, once sealed."""

    __tablename__ = "audit_event"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[str] = mapped_column(String(36), unique=True)
    recorded: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(1))
    kind: Mapped[str] = mapped_column(String(32))
    actor_client_id: Mapped[str] = mapped_column(String(64))
    actor_org_id: Mapped[str] = mapped_column(String(64))
    # Whose data the event is about (the practice); the practice reads its events by this.
    tenant_org_id: Mapped[str | None] = mapped_column(String(64))
    # The Patient resource id, never an NHS number or a name.
    patient_id: Mapped[str | None] = mapped_column(String(64))
    # `Type/id` references, space-separated (ids never contain spaces).
    entities: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str | None] = mapped_column(String(32))  # v3-ActReason code
    outcome: Mapped[int] = mapped_column(SmallInteger)
    detail: Mapped[str | None] = mapped_column(String(255))
    # A read, history or search that returned the data of several tenants or patients is one
    # row, not one per (tenant, patient) as BALP presents it: each stored event cost ~80 µs of
    # CPU to record and seal, most of a search's. This JSON list of [tenant, patient, count]
    # says whose each run of `entities` is, in order; it is hashed with the row, and
    # `tenant_org_id` and `patient_id` are then null. Null for every other event (chain.py).
    entity_groups: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_audit_event_tenant_patient", "tenant_org_id", "patient_id", "seq"),
        CheckConstraint("action IN ('C', 'R', 'U', 'D', 'E')", name="action"),
        CheckConstraint("outcome IN (0, 4, 8, 12)", name="outcome"),
    )

    def __repr__(self) -> str:
        return f"AuditEvent(#{self.seq} {self.kind} {self.outcome})"


class AuditEventGroup(Base):
    """One (tenant, patient) group of an event with `entity_groups`, written in the same
    statement as the event, so that a tenant's or a patient's events stay an indexed lookup
    whether they were stored alone or merged. Not hashed itself: `spis audit verify` checks these
    rows against the hashed `entity_groups`, and that each names an event that has groups.
    Append-only, like audit_event.

    No foreign key to audit_event: its check ran once per row (a page's 50), about a third of
    what writing the rows cost, and guarded nothing the above does not. The rows are written
    with their event in one statement, and an event is never deleted but by tampering, which
    verify reports."""

    __tablename__ = "audit_event_group"

    event_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    grp: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    tenant_org_id: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index(
            "ix_audit_event_group_tenant_patient", "tenant_org_id", "patient_id", "event_seq", "grp"
        ),
    )

    def __repr__(self) -> str:
        return f"AuditEventGroup(#{self.event_seq}/{self.grp})"


class AuditChainLink(Base):
    """One link of the hash chain: `pos` counts from 1 with no gaps; `hash` is
    SHA-256(prev_hash || canonical(pos, event)) (chain.py). Append-only, like audit_event."""

    __tablename__ = "audit_chain"

    pos: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    event_seq: Mapped[int] = mapped_column(BigInteger, ForeignKey("audit_event.seq"), unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    def __repr__(self) -> str:
        return f"AuditChainLink(@{self.pos} event #{self.event_seq})"


class AuditUnsealed(Base):
    """An event committed but not chained yet. A trigger on audit_event adds the row in the
    event's own transaction; the sealer removes it in the transaction that chains the event, and
    a trigger refuses removing it before."""

    __tablename__ = "audit_unsealed"

    event_seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )

    def __repr__(self) -> str:
        return f"AuditUnsealed(#{self.event_seq})"
