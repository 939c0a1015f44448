"""Every query on the audit tables. Append and read only: no update, and the only delete is the
sealer's, of queue rows whose event it has just chained.

Events are inserted with no lock and no read: `seq` comes from a sequence (SQLite: the rowid), and
a trigger queues each new event in `audit_unsealed` in the same statement. Only the sealer reads
the chain's head, under a lock that sealers alone take (sealer.py), so no request ever waits for
another one's audit events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from sqlalchemy import (
    Connection,
    Integer,
    Row,
    Select,
    and_,
    bindparam,
    delete,
    desc,
    false,
    func,
    insert,
    literal_column,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from referral_service.audit import chain
from referral_service.audit.models import (
    AuditChainLink,
    AuditEvent,
    AuditEventGroup,
    AuditUnsealed,
)
from referral_service.kit.clock import as_utc
from referral_service.kit.prepared import Prepared

# The key of the PostgreSQL advisory lock that lets one sealer at a time chain ("SPISSEAL" as a
# 64-bit integer). Only sealers take it: recording an event never does.
SEALER_LOCK_KEY = int.from_bytes(b"SPISSEAL", "big")

_EVENT_COLUMNS = (
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
    AuditEvent.entity_groups,
)


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The newest chain row. `seq` is its position (`audit_chain.pos`), so named in anchors."""

    seq: int
    hash: str


_INSERTED = (
    "id",
    "recorded",
    "action",
    "kind",
    "actor_client_id",
    "actor_org_id",
    "tenant_org_id",
    "patient_id",
    "entities",
    "purpose",
    "outcome",
    "detail",
)
# Built once and sent by the driver (kit/prepared.py): the insert runs on every audited request,
# and building and executing statements through SQLAlchemy costs several times the insert itself.
# `inline`: `seq` is the database's to assign, and nothing reads it back.
_INSERT = Prepared(insert(AuditEvent).inline().values({c: bindparam(c) for c in _INSERTED}))


# PostgreSQL, two events or more: one INSERT of all of them, each column one typed array. Sent
# row by row (psycopg's executemany sends one INSERT per parameter set), the statement-level queue
# trigger ran once per event, and each INSERT was a round trip: a search page's 50 events (before
# they became one merged event) cost PostgreSQL 2.4 ms, 1.4 in one statement. `unnest` of several
# arrays yields their elements side by side, in array order, so `seq` is still the events' order.
_INSERT_MANY_PG = Prepared(
    text(
        "INSERT INTO audit_event (id, recorded, action, kind, actor_client_id, actor_org_id, "
        "tenant_org_id, patient_id, entities, purpose, outcome, detail) "
        "SELECT * FROM unnest(CAST(:id AS TEXT[]), CAST(:recorded AS TIMESTAMPTZ[]), "
        "CAST(:action AS TEXT[]), CAST(:kind AS TEXT[]), CAST(:actor_client_id AS TEXT[]), "
        "CAST(:actor_org_id AS TEXT[]), CAST(:tenant_org_id AS TEXT[]), "
        "CAST(:patient_id AS TEXT[]), CAST(:entities AS TEXT[]), CAST(:purpose AS TEXT[]), "
        "CAST(:outcome AS SMALLINT[]), CAST(:detail AS TEXT[]))"
    ),
    binary=True,
)


# PostgreSQL, a merged event (one with `entity_groups`): the event and its group rows in one
# statement, the groups' `event_seq` from the event's RETURNING. The group rows are read out of
# the `entity_groups` text the event stored (a JSON list of [tenant, patient, count], chain.py),
# so they are what its hash covers by construction; sending them again as three arrays cost the
# client more than the insert (psycopg dumps a list element by element, in Python).
_INSERT_MERGED_PG = Prepared(
    text(
        "WITH e AS (INSERT INTO audit_event (id, recorded, action, kind, actor_client_id, "
        "actor_org_id, entities, purpose, outcome, detail, entity_groups) "
        "VALUES (CAST(:id AS TEXT), CAST(:recorded AS TIMESTAMPTZ), CAST(:action AS TEXT), "
        "CAST(:kind AS TEXT), CAST(:actor_client_id AS TEXT), CAST(:actor_org_id AS TEXT), "
        "CAST(:entities AS TEXT), CAST(:purpose AS TEXT), CAST(:outcome AS SMALLINT), "
        "CAST(:detail AS TEXT), CAST(:entity_groups AS TEXT)) RETURNING seq, entity_groups) "
        "INSERT INTO audit_event_group (event_seq, grp, tenant_org_id, patient_id) "
        "SELECT e.seq, CAST(g.n - 1 AS INTEGER), g.grp ->> 0, g.grp ->> 1 "
        "FROM e, json_array_elements(CAST(e.entity_groups AS JSON)) WITH ORDINALITY AS g(grp, n)"
    ),
    binary=True,
)


# PostgreSQL, two merged events or more (search pages' in one group commit, grouped.py): all of
# them and their group rows in one statement, as `_INSERT_MANY_PG` and `_INSERT_MERGED_PG`.
_INSERT_MERGED_MANY_PG = Prepared(
    text(
        "WITH e AS (INSERT INTO audit_event (id, recorded, action, kind, actor_client_id, "
        "actor_org_id, entities, purpose, outcome, detail, entity_groups) "
        "SELECT * FROM unnest(CAST(:id AS TEXT[]), CAST(:recorded AS TIMESTAMPTZ[]), "
        "CAST(:action AS TEXT[]), CAST(:kind AS TEXT[]), CAST(:actor_client_id AS TEXT[]), "
        "CAST(:actor_org_id AS TEXT[]), CAST(:entities AS TEXT[]), CAST(:purpose AS TEXT[]), "
        "CAST(:outcome AS SMALLINT[]), CAST(:detail AS TEXT[]), CAST(:entity_groups AS TEXT[])) "
        "RETURNING seq, entity_groups) "
        "INSERT INTO audit_event_group (event_seq, grp, tenant_org_id, patient_id) "
        "SELECT e.seq, CAST(g.n - 1 AS INTEGER), g.grp ->> 0, g.grp ->> 1 "
        "FROM e, json_array_elements(CAST(e.entity_groups AS JSON)) WITH ORDINALITY AS g(grp, n)"
    ),
    binary=True,
)


def insert_events(session: Session, events: Sequence[chain.Event]) -> None:
    """Store the events in the caller's transaction, in one statement (the trigger queues them
    for the sealer); a merged event, with its group rows, in one more."""
    if not events:
        return
    connection = session.connection()
    alone = [event for event in events if event.entity_groups is None]
    if len(alone) > 1 and connection.dialect.driver == "psycopg":
        _INSERT_MANY_PG.run(connection, [_columns(alone)])
    elif alone:
        _INSERT.run(connection, [_row(event) for event in alone])
    for event in events:
        if event.entity_groups is not None:
            _insert_merged(connection, event, event.entity_groups)


async def insert_events_known(
    connection: AsyncConnection[Any], events: Sequence[chain.Event]
) -> None:
    """`insert_events` on an async connection in autocommit (audit/grouped.py): stored and
    committed when it returns. The events that name no groups (reads of one resource each) in
    one statement, the merged ones (search pages') with their group rows in another; both in one
    transaction, so that a failure stores none."""
    alone = [event for event in events if event.entity_groups is None]
    merged = [event for event in events if event.entity_groups is not None]
    sends: list[tuple[Prepared, dict[str, Any]]] = []
    if len(alone) > 1:
        sends.append((_INSERT_MANY_PG, _columns(alone)))
    elif alone:
        sends.append((_INSERT, _row(alone[0])))
    if len(merged) > 1:
        columns = _columns(merged)
        del columns["tenant_org_id"], columns["patient_id"]  # null: the groups name them
        columns["entity_groups"] = [event.entity_groups for event in merged]
        sends.append((_INSERT_MERGED_MANY_PG, columns))
    elif merged:
        [event] = merged
        assert event.entity_groups is not None  # mypy: `merged` holds only events with groups
        sends.append((_INSERT_MERGED_PG, _merged_row_pg(event, event.entity_groups)))
    if len(sends) == 1:
        await sends[0][0].send(connection, sends[0][1])
        return
    async with connection.transaction():
        for statement, params in sends:
            await statement.send(connection, params)


def _merged_row_pg(event: chain.Event, entity_groups: str) -> dict[str, Any]:
    """A merged event's row for `_INSERT_MERGED_PG`: no tenant or patient, the groups name them."""
    row = {**_row(event), "entity_groups": entity_groups}
    del row["tenant_org_id"], row["patient_id"]
    return row


def _insert_merged(connection: Connection, event: chain.Event, entity_groups: str) -> None:
    if connection.dialect.driver == "psycopg":
        _INSERT_MERGED_PG.run(connection, [_merged_row_pg(event, entity_groups)])
        return
    row = {**_row(event), "entity_groups": entity_groups}
    groups = chain.groups_of(entity_groups)
    inserted = connection.execute(insert(AuditEvent).values(row)).inserted_primary_key
    assert inserted is not None  # sqlalchemy's typing: an INSERT of one row has its key
    seq = inserted[0]
    connection.execute(
        insert(AuditEventGroup),
        [
            {
                "event_seq": seq,
                "grp": n,
                "tenant_org_id": g.tenant_org_id,
                "patient_id": g.patient_id,
            }
            for n, g in enumerate(groups)
        ],
    )


def _columns(events: Sequence[chain.Event]) -> dict[str, list[object]]:
    """The events as one list per column, for `_INSERT_MANY_PG`."""
    return {
        "id": [e.id for e in events],
        "recorded": [e.recorded for e in events],
        "action": [e.action for e in events],
        "kind": [e.kind for e in events],
        "actor_client_id": [e.actor_client_id for e in events],
        "actor_org_id": [e.actor_org_id for e in events],
        "tenant_org_id": [e.tenant_org_id for e in events],
        "patient_id": [e.patient_id for e in events],
        "entities": [chain.entities_column(e.entities) for e in events],
        "purpose": [e.purpose for e in events],
        "outcome": [int(e.outcome) for e in events],
        "detail": [e.detail for e in events],
    }


def _row(event: chain.Event) -> dict[str, object]:
    return {
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
    }


# --- the sealer's queries (sealer.py) -----------------------------------------------------------

_PEEK = select(AuditUnsealed.event_seq).limit(1)
_TRY_LOCK_PG = select(func.pg_try_advisory_xact_lock(SEALER_LOCK_KEY))
_LOCK_PG = select(func.pg_advisory_xact_lock(SEALER_LOCK_KEY))
# SQLite: a write that matches no row still takes the database write lock (and must come first:
# a transaction that read before it wrote cannot wait for the lock, it fails at once).
_LOCK_SQLITE = update(AuditUnsealed).where(false()).values(event_seq=AuditUnsealed.event_seq)
_HEAD = select(AuditChainLink.pos, AuditChainLink.hash).order_by(AuditChainLink.pos.desc()).limit(1)
_INSERT_LINKS = insert(AuditChainLink)


def anything_queued(connection: Connection) -> bool:
    return connection.execute(_PEEK).first() is not None


def lock_for_sealing(connection: Connection, *, wait: bool) -> bool:
    """Take the sealers' lock until the transaction ends; False when another sealer holds it and
    `wait` is off."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        if wait:
            connection.execute(_LOCK_PG)
            return True
        return bool(connection.scalar(_TRY_LOCK_PG))
    if dialect == "sqlite":
        connection.execute(_LOCK_SQLITE)  # waits up to the busy timeout
        return True
    raise NotImplementedError(f"audit sealing is not serialised on {dialect}")  # pragma: no cover


def chain_head(connection: Connection) -> ChainHead | None:
    found = connection.execute(_HEAD).first()
    return None if found is None else ChainHead(int(found.pos), str(found.hash))


def queued(
    connection: Connection, limit: int, upto: int | None = None
) -> list[tuple[chain.Recorded, bool]]:
    """Up to `limit` queued events, oldest seq first, each with whether it is already chained (a
    queue row put back by hand: it is only dequeued). A queue row whose event is gone is left
    alone for `verify` to report."""
    stmt = queued_statement(limit, upto)
    # All rows at once: iterating the result fetches them one by one from the driver, which cost
    # the sealer more than building the events.
    return [_queued(*row) for row in connection.execute(stmt).all()]


def _queued(
    seq: int,
    id_: str,
    recorded: datetime,
    action: str,
    kind: str,
    actor_client_id: str,
    actor_org_id: str,
    tenant_org_id: str | None,
    patient_id: str | None,
    entities: str,
    purpose: str | None,
    outcome: int,
    detail: str | None,
    entity_groups: str | None,
    pos: int | None,
) -> tuple[chain.Recorded, bool]:
    """As `_recorded`, by position: the sealer reads up to 1,000 rows a turn, and a Row's
    attributes by name cost it more than building the event."""
    event = chain.Event(
        id_,
        as_utc(recorded),
        action,
        kind,
        actor_client_id,
        actor_org_id,
        tenant_org_id,
        patient_id,
        chain.entities_of(entities),
        purpose,
        outcome,
        detail,
        entity_groups,
    )
    return chain.Recorded(seq, event), pos is not None


def queued_statement(limit: int, upto: int | None = None) -> Select[*tuple[Any, ...]]:
    """The first `limit` queue rows are taken first, then their events: a join the planner may
    order would, with the queue's statistics stale after a backlog (it churns), walk audit_event
    from its first event probing the queue for each (~1 s a turn with 280,000 events). A queue
    row whose event is gone (only by tampering past the append-only guards) still takes a place
    in the batch, and stays queued for `verify` to report: leaving it out with EXISTS let the
    planner scan every event again."""
    first = select(AuditUnsealed.event_seq).order_by(AuditUnsealed.event_seq).limit(limit)
    if upto is not None:
        first = first.where(AuditUnsealed.event_seq <= upto)
    waiting = first.subquery()
    return (
        select(*_EVENT_COLUMNS, AuditChainLink.pos)
        .select_from(waiting)
        .join(AuditEvent, AuditEvent.seq == waiting.c.event_seq)
        .outerjoin(AuditChainLink, AuditChainLink.event_seq == waiting.c.event_seq)
        .order_by(waiting.c.event_seq)
    )


# PostgreSQL: a turn's chain rows in one INSERT of arrays, and its queue rows out in one DELETE
# with one array parameter (not an IN list of up to 1,000 parameters, a new statement to plan for
# each batch size). PostgreSQL's CPU per sealed event went from ~32 to ~26 µs, the sealer's Python
# (in the API processes) from ~41 to ~30 µs.
_INSERT_LINKS_PG = Prepared(
    text(
        "INSERT INTO audit_chain (pos, event_seq, prev_hash, hash) "
        "SELECT * FROM unnest(CAST(:pos AS BIGINT[]), CAST(:event_seq AS BIGINT[]), "
        "CAST(:prev_hash AS TEXT[]), CAST(:hash AS TEXT[]))"
    ),
    binary=True,
)
_DEQUEUE_PG = Prepared(
    text("DELETE FROM audit_unsealed WHERE event_seq = ANY(CAST(:event_seqs AS BIGINT[]))"),
    binary=True,
)


def add_links(connection: Connection, links: Sequence[chain.Link]) -> None:
    if not links:
        return
    if connection.dialect.driver == "psycopg":
        columns = {
            "pos": [lk.pos for lk in links],
            "event_seq": [lk.event_seq for lk in links],
            "prev_hash": [lk.prev_hash for lk in links],
            "hash": [lk.hash for lk in links],
        }
        _INSERT_LINKS_PG.run(connection, [columns])
        return
    rows = [
        {"pos": lk.pos, "event_seq": lk.event_seq, "prev_hash": lk.prev_hash, "hash": lk.hash}
        for lk in links
    ]
    connection.execute(_INSERT_LINKS, rows)


def dequeue(connection: Connection, event_seqs: Sequence[int]) -> None:
    if not event_seqs:
        return
    if connection.dialect.driver == "psycopg":
        _DEQUEUE_PG.run(connection, [{"event_seqs": list(event_seqs)}])
        return
    connection.execute(delete(AuditUnsealed).where(AuditUnsealed.event_seq.in_(event_seqs)))


def last_queued_seq(connection: Connection) -> int | None:
    return connection.scalar(select(func.max(AuditUnsealed.event_seq)))


# --- reading the chain (verify.py, anchors) ----------------------------------------------------


def head(session: Session) -> ChainHead | None:
    """The newest chain row's position and hash: the value to keep outside the database."""
    return chain_head(session.connection())


def last_pos(session: Session) -> int:
    return int(session.scalar(select(func.max(AuditChainLink.pos))) or 0)


def links_after(session: Session, pos: int, limit: int) -> list[chain.Link]:
    """The next `limit` chain rows after `pos`, with their events (keyset paging: constant cost
    per batch). A row whose event is gone comes with `event` None."""
    stmt = (
        select(
            AuditChainLink.pos,
            AuditChainLink.event_seq,
            AuditChainLink.prev_hash,
            AuditChainLink.hash,
            *_EVENT_COLUMNS,
        )
        .outerjoin(AuditEvent, AuditEvent.seq == AuditChainLink.event_seq)
        .where(AuditChainLink.pos > pos)
        .order_by(AuditChainLink.pos)
        .limit(limit)
    )
    return [
        chain.Link(
            row.pos,
            row.event_seq,
            None if row.seq is None else _recorded(row).event,
            row.prev_hash,
            row.hash,
        )
        for row in session.execute(stmt)
    ]


@dataclass(frozen=True, slots=True)
class QueueState:
    count: int
    oldest_recorded: datetime | None


def queue_state(session: Session) -> QueueState:
    stmt = (
        select(func.count(), func.min(AuditEvent.recorded))
        .select_from(AuditUnsealed)
        .join(AuditEvent, AuditEvent.seq == AuditUnsealed.event_seq)
    )
    count, oldest = session.execute(stmt).one()
    return QueueState(int(count), None if oldest is None else as_utc(oldest))


def first_queued_without_event(session: Session) -> int | None:
    """A queue row whose event is gone: deleted before it was sealed."""
    stmt = (
        select(AuditUnsealed.event_seq)
        .where(~select(AuditEvent.seq).where(AuditEvent.seq == AuditUnsealed.event_seq).exists())
        .order_by(AuditUnsealed.event_seq)
        .limit(1)
    )
    return session.scalar(stmt)


def first_unaccounted_event(session: Session) -> int | None:
    """An event neither chained nor queued: inserted past the trigger, or its chain row or queue
    row removed. One statement, so one snapshot: the sealer moving rows does not show here."""
    chained = select(AuditChainLink.pos).where(AuditChainLink.event_seq == AuditEvent.seq)
    waiting = select(AuditUnsealed.event_seq).where(AuditUnsealed.event_seq == AuditEvent.seq)
    stmt = (
        select(AuditEvent.seq)
        .where(~chained.exists(), ~waiting.exists())
        .order_by(AuditEvent.seq)
        .limit(1)
    )
    return session.scalar(stmt)


# --- the practice's view (practice.py) ----------------------------------------------------------

_ALONE = literal_column("-1", Integer)  # the `grp` of an event stored alone


def for_patient(
    session: Session,
    tenant_org_id: str,
    patient_id: str,
    *,
    limit: int,
    offset: int,
    max_seq: int | None = None,
) -> list[chain.Recorded]:
    """A tenant's events about one patient, newest first, none after `max_seq`: events stored
    alone by their own columns, and the matching part of merged events by their group rows (both
    indexed), paged together. The tenant is part of the query, and a part is shown only if the
    hashed `entity_groups` agrees. Chained or not: an event is readable once its transaction
    committed."""
    alone = select(AuditEvent.seq.label("seq"), _ALONE.label("grp")).where(
        AuditEvent.tenant_org_id == tenant_org_id, AuditEvent.patient_id == patient_id
    )
    merged = select(AuditEventGroup.event_seq.label("seq"), AuditEventGroup.grp.label("grp")).where(
        AuditEventGroup.tenant_org_id == tenant_org_id, AuditEventGroup.patient_id == patient_id
    )
    if max_seq is not None:
        alone = alone.where(AuditEvent.seq <= max_seq)
        merged = merged.where(AuditEventGroup.event_seq <= max_seq)
    hits = (
        union_all(alone, merged)
        .order_by(desc("seq"), desc("grp"))
        .limit(limit)
        .offset(offset)
        .subquery()
    )
    stmt = (
        select(*_EVENT_COLUMNS, hits.c.grp)
        .join_from(hits, AuditEvent, AuditEvent.seq == hits.c.seq)
        .order_by(hits.c.seq.desc(), hits.c.grp.desc())
    )
    found = (_shown(row, row.grp, tenant_org_id) for row in session.execute(stmt))
    return [recorded for recorded in found if recorded and recorded.event.patient_id == patient_id]


def _shown(row: Row[*tuple[Any, ...]], grp: int, tenant_org_id: str) -> chain.Recorded | None:
    """The event, or its part `grp` if merged; None when that part is not the tenant's (its
    group row disagrees with the hashed groups: `verify` names it)."""
    recorded = _recorded(row)
    if recorded.event.entity_groups is None:
        return recorded
    try:
        shown = chain.part(recorded.event, grp)
    except (ValueError, IndexError):
        return None
    return chain.Recorded(recorded.seq, shown) if shown.tenant_org_id == tenant_org_id else None


def _by_id(tenant_org_id: str, event_id: str) -> tuple[Select[*tuple[Any, ...]], int | None]:
    """The statement that finds one of a tenant's events by the id it is shown with: a merged
    event's part `<id>-<n>` through its group row, so the tenant is in the query either way."""
    base, n = chain.split_part_id(event_id)
    stmt = select(*_EVENT_COLUMNS).where(AuditEvent.id == base)
    if n is None:
        return stmt.where(AuditEvent.tenant_org_id == tenant_org_id), None
    group = and_(
        AuditEventGroup.event_seq == AuditEvent.seq,
        AuditEventGroup.grp == n,
        AuditEventGroup.tenant_org_id == tenant_org_id,
    )
    return stmt.where(select(AuditEventGroup.grp).where(group).exists()), n


def get(session: Session, tenant_org_id: str, event_id: str) -> chain.Recorded | None:
    """One of the tenant's events, or one part of a merged event, by the id it is shown with."""
    stmt, n = _by_id(tenant_org_id, event_id)
    row = session.execute(stmt).first()
    if row is None:
        return None
    return _recorded(row) if n is None else _shown(row, n, tenant_org_id)


def seq_of(session: Session, tenant_org_id: str, event_id: str) -> int | None:
    found = get(session, tenant_org_id, event_id)
    return None if found is None else found.seq


# --- checking the group rows (verify.py) --------------------------------------------------------


GroupRow = tuple[int, str | None, str | None]  # (grp, tenant, patient)


def group_rows(session: Session, event_seqs: Sequence[int]) -> dict[int, set[GroupRow]]:
    """The group rows of these events."""
    found: dict[int, set[GroupRow]] = {seq: set() for seq in event_seqs}
    if not event_seqs:
        return found
    stmt = select(
        AuditEventGroup.event_seq,
        AuditEventGroup.grp,
        AuditEventGroup.tenant_org_id,
        AuditEventGroup.patient_id,
    ).where(AuditEventGroup.event_seq.in_(event_seqs))
    for seq, grp, tenant, patient in session.execute(stmt):
        found[seq].add((grp, tenant, patient))
    return found


def first_stray_group(session: Session) -> int | None:
    """A group row of an event that has no groups, or of no event at all."""
    stmt = (
        select(AuditEventGroup.event_seq)
        .outerjoin(AuditEvent, AuditEvent.seq == AuditEventGroup.event_seq)
        .where(AuditEvent.entity_groups.is_(None))
        .order_by(AuditEventGroup.event_seq)
        .limit(1)
    )
    return session.scalar(stmt)


def _recorded(row: Row[*tuple[Any, ...]]) -> chain.Recorded:
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
        entity_groups=row.entity_groups,
    )
    return chain.Recorded(row.seq, event)
