"""Every query on audit_event. Append and read only: there is no update and no delete.

Appends are serialised so that two processes never chain onto the same head: PostgreSQL takes a
transaction-level advisory lock before reading the head; SQLite takes the database write lock
with an UPDATE that matches no row (SQLite runs one writer at a time, but only from the first
write on: a plain SELECT would read the head unlocked). The primary key on `seq` would refuse a
fork anyway; the lock turns that failed commit into a short wait.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, false, func, insert, select, text, update
from sqlalchemy.orm import Session

from referral_service.audit import chain
from referral_service.audit.models import AuditEvent
from referral_service.kit.clock import as_utc

# The key of the PostgreSQL advisory lock that serialises appends ("SPISAUDT" as a 64-bit
# integer). It lives in the migration's audit_event_lock_head(); named here for operators.
APPEND_LOCK_KEY = int.from_bytes(b"SPISAUDT", "big")

_COLUMNS = (
    AuditEvent.seq,
    AuditEvent.id,
    AuditEvent.recorded,
    AuditEvent.action,
    AuditEvent.kind,
    AuditEvent.actor_client_id,
    AuditEvent.actor_org_id,
    AuditEvent.tenant_org_id,
    AuditEvent.patient_id,
    AuditEvent.entities,
    AuditEvent.purpose,
    AuditEvent.outcome,
    AuditEvent.detail,
    AuditEvent.prev_hash,
    AuditEvent.hash,
)


@dataclass(frozen=True, slots=True)
class ChainHead:
    seq: int
    hash: str


# Built once and run on the session's connection: the append path runs under a lock that the
# whole system shares, and building ORM statements costs several times the query itself.
# PostgreSQL: take the advisory lock, then read the head, in one round trip (see the migration).
_LOCK_AND_HEAD_PG = text("SELECT seq, hash FROM audit_event_lock_head()")
# SQLite: a write that matches no row still takes the database write lock.
_LOCK_SQLITE = update(AuditEvent).where(false()).values(seq=AuditEvent.seq)
_HEAD = select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
_INSERT = insert(AuditEvent)


def append(session: Session, events: Sequence[chain.Event]) -> list[int]:
    """Chain the events onto the head, in order, in the caller's transaction; their seqs."""
    if not events:
        return []
    connection = session.connection()
    seq, prev = _lock_and_read_head(connection)
    rows, seqs = [], []
    for event in events:
        seq += 1
        digest = chain.link_hash(prev, seq, event)
        rows.append(_row(seq, event, prev, digest))
        seqs.append(seq)
        prev = digest
    connection.execute(_INSERT, rows)
    return seqs


def _lock_and_read_head(connection: Connection) -> tuple[int, str]:
    """The head's seq and hash (0 and GENESIS for an empty chain), read under the append lock,
    which is held until the transaction ends."""
    dialect = connection.dialect.name
    current: Row[*tuple[Any, ...]] | None
    if dialect == "postgresql":
        current = connection.execute(_LOCK_AND_HEAD_PG).one()
    elif dialect == "sqlite":
        connection.execute(_LOCK_SQLITE)
        current = connection.execute(_HEAD).first()
    else:  # pragma: no cover - SPIS runs on these two only
        raise NotImplementedError(f"audit appends are not serialised on {dialect}")
    if current is None or current.seq is None:
        return 0, chain.GENESIS
    return int(current.seq), str(current.hash)


def _row(seq: int, event: chain.Event, prev_hash: str, digest: str) -> dict[str, object]:
    return {
        "seq": seq,
        "id": event.id,
        "recorded": event.recorded,
        "action": event.action,
        "kind": event.kind,
        "actor_client_id": event.actor_client_id,
        "actor_org_id": event.actor_org_id,
        "tenant_org_id": event.tenant_org_id,
        "patient_id": event.patient_id,
        "entities": chain.entities_column(event.entities),
        "purpose": event.purpose,
        "outcome": event.outcome,
        "detail": event.detail,
        "prev_hash": prev_hash,
        "hash": digest,
    }


def head(session: Session) -> ChainHead | None:
    """The newest row's seq and hash: the value to keep outside the database as an anchor."""
    found = session.execute(_HEAD).first()
    return None if found is None else ChainHead(found.seq, found.hash)


def last_seq(session: Session) -> int:
    return int(session.scalar(select(func.max(AuditEvent.seq))) or 0)


def links_after(session: Session, seq: int, limit: int) -> list[chain.Link]:
    """The next `limit` rows in chain order after `seq` (keyset paging: constant cost per batch)."""
    stmt = select(*_COLUMNS).where(AuditEvent.seq > seq).order_by(AuditEvent.seq).limit(limit)
    return [_link(row) for row in session.execute(stmt)]


def for_patient(
    session: Session,
    tenant_org_id: str,
    patient_id: str,
    *,
    limit: int,
    offset: int,
    max_seq: int | None = None,
) -> list[chain.Link]:
    """A tenant's events about one patient, newest first, none after `max_seq`. The tenant is
    part of the query."""
    stmt = (
        select(*_COLUMNS)
        .where(AuditEvent.tenant_org_id == tenant_org_id, AuditEvent.patient_id == patient_id)
        .order_by(AuditEvent.seq.desc())
        .limit(limit)
        .offset(offset)
    )
    if max_seq is not None:
        stmt = stmt.where(AuditEvent.seq <= max_seq)
    return [_link(row) for row in session.execute(stmt)]


def seq_of(session: Session, tenant_org_id: str, event_id: str) -> int | None:
    stmt = select(AuditEvent.seq).where(
        AuditEvent.id == event_id, AuditEvent.tenant_org_id == tenant_org_id
    )
    return session.scalar(stmt)


def get(session: Session, tenant_org_id: str, event_id: str) -> chain.Link | None:
    stmt = select(*_COLUMNS).where(
        AuditEvent.id == event_id, AuditEvent.tenant_org_id == tenant_org_id
    )
    row = session.execute(stmt).first()
    return None if row is None else _link(row)


def _link(row: Row[*tuple[Any, ...]]) -> chain.Link:
    event = chain.Event(
        id=row.id,
        recorded=as_utc(row.recorded),
        action=row.action,
        kind=row.kind,
        actor_client_id=row.actor_client_id,
        actor_org_id=row.actor_org_id,
        tenant_org_id=row.tenant_org_id,
        patient_id=row.patient_id,
        entities=chain.entities_of(row.entities),
        purpose=row.purpose,
        outcome=row.outcome,
        detail=row.detail,
    )
    return chain.Link(row.seq, event, row.prev_hash, row.hash)
