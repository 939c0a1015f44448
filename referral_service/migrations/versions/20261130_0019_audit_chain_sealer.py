"""audit: the hash chain moves to audit_chain, sealed after commit (issue 12)

Revision ID: 20261130_0019
Revises: 20261129_0018
Create Date: 2026-11-30 09:00:00

Recording an event no longer takes the one lock every audited transaction shared: audit_event
keeps the event, numbered by a sequence (SQLite: its rowid), and a trigger queues it in
audit_unsealed; the sealer (referral_service/audit/sealer.py) chains queued events into
audit_chain after they commit. Existing rows are copied as they are (pos = event_seq = seq, same
hashes: the canonical form hashes the chain position, which was their seq), so chains and anchors
from before still verify.

audit_chain is append-only like audit_event (triggers refuse UPDATE and DELETE; the app role has
neither right). audit_unsealed rows can be removed only once their event is chained, and never
changed. audit_event_lock_head() is dropped.

Downgrade chains whatever is still queued, then rebuilds the old audit_event from the chain, its
seq being the chain position again. An event in neither table (tampering) is not carried back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic import op

if TYPE_CHECKING:
    from referral_service.audit.chain import Event

revision = "20261130_0019"
down_revision = "20261129_0018"
branch_labels = None
depends_on = None


PG_UPGRADE = [
    "DROP FUNCTION IF EXISTS audit_event_lock_head()",
    # What BIGSERIAL would have made, numbered on from the existing rows.
    "CREATE SEQUENCE audit_event_seq_seq OWNED BY audit_event.seq",
    "SELECT setval('audit_event_seq_seq', (SELECT COALESCE(max(seq), 0) + 1 FROM audit_event), "
    "false)",
    "ALTER TABLE audit_event ALTER COLUMN seq SET DEFAULT nextval('audit_event_seq_seq')",
    # 42501, as a REVOKEd right raises: the same error whichever guard stops the change.
    """
CREATE FUNCTION audit_chain_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_chain is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
""",
    """
CREATE TRIGGER audit_chain_append_only BEFORE UPDATE OR DELETE ON audit_chain
FOR EACH ROW EXECUTE FUNCTION audit_chain_append_only()
""",
    """
CREATE FUNCTION audit_unsealed_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' OR NOT EXISTS (
        SELECT 1 FROM audit_chain c WHERE c.event_seq = OLD.event_seq
    ) THEN
        RAISE EXCEPTION 'audit_unsealed: an event leaves the queue only once chained (% refused)',
            TG_OP USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
END
$$
""",
    """
CREATE TRIGGER audit_unsealed_guard BEFORE UPDATE OR DELETE ON audit_unsealed
FOR EACH ROW EXECUTE FUNCTION audit_unsealed_guard()
""",
    # One INSERT per statement, whatever the number of events it stores.
    """
CREATE FUNCTION audit_event_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_unsealed (event_seq) SELECT seq FROM new_events;
    RETURN NULL;
END
$$
""",
    """
CREATE TRIGGER audit_event_enqueue AFTER INSERT ON audit_event
REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION audit_event_enqueue()
""",
]
PG_DOWNGRADE_DROP = [
    "DROP TRIGGER IF EXISTS audit_event_enqueue ON audit_event",
    "DROP FUNCTION IF EXISTS audit_event_enqueue()",
    "DROP TRIGGER IF EXISTS audit_unsealed_guard ON audit_unsealed",
    "DROP FUNCTION IF EXISTS audit_unsealed_guard()",
    "DROP TRIGGER IF EXISTS audit_chain_append_only ON audit_chain",
    "DROP FUNCTION IF EXISTS audit_chain_append_only()",
    "DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event",
]


def _sqlite_append_only(table: str) -> list[str]:
    return [
        f"""
CREATE TRIGGER {table}_no_{op_name.lower()} BEFORE {op_name} ON {table}
BEGIN
    SELECT RAISE(ABORT, '{table} is append-only: {op_name} refused');
END
"""
        for op_name in ("UPDATE", "DELETE")
    ]


SQLITE_UPGRADE = [
    *_sqlite_append_only("audit_event"),
    *_sqlite_append_only("audit_chain"),
    """
CREATE TRIGGER audit_unsealed_no_update BEFORE UPDATE ON audit_unsealed
BEGIN
    SELECT RAISE(ABORT, 'audit_unsealed: an event leaves the queue only once chained');
END
""",
    """
CREATE TRIGGER audit_unsealed_chained_only BEFORE DELETE ON audit_unsealed
WHEN NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_seq = OLD.event_seq)
BEGIN
    SELECT RAISE(ABORT, 'audit_unsealed: an event leaves the queue only once chained');
END
""",
    """
CREATE TRIGGER audit_event_enqueue AFTER INSERT ON audit_event
BEGIN
    INSERT INTO audit_unsealed (event_seq) VALUES (NEW.seq);
END
""",
]
SQLITE_TRIGGERS = [
    "audit_event_no_update",
    "audit_event_no_delete",
    "audit_event_enqueue",
    "audit_chain_no_update",
    "audit_chain_no_delete",
    "audit_unsealed_no_update",
    "audit_unsealed_chained_only",
]


def _seq_type() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _create_chain_tables() -> None:
    op.create_table(
        "audit_chain",
        sa.Column("pos", _seq_type(), autoincrement=False, nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_seq"], ["audit_event.seq"], name=op.f("fk_audit_chain_event_seq_audit_event")
        ),
        sa.PrimaryKeyConstraint("pos", name=op.f("pk_audit_chain")),
        sa.UniqueConstraint("event_seq", name=op.f("uq_audit_chain_event_seq")),
    )
    op.create_table(
        "audit_unsealed",
        sa.Column("event_seq", _seq_type(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("event_seq", name=op.f("pk_audit_unsealed")),
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _create_chain_tables()
        op.execute(
            "INSERT INTO audit_chain (pos, event_seq, prev_hash, hash) "
            "SELECT seq, seq, prev_hash, hash FROM audit_event ORDER BY seq"
        )
        op.drop_column("audit_event", "hash")
        op.drop_column("audit_event", "prev_hash")
        for statement in PG_UPGRADE:
            op.execute(statement)
        return
    # SQLite drops a column by copying the table, which audit_chain's foreign key would refuse
    # (and which drops the triggers): keep the hashes aside, copy, then build the chain.
    op.execute("CREATE TABLE _audit_hashes AS SELECT seq, prev_hash, hash FROM audit_event")
    op.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
    op.execute("DROP TRIGGER IF EXISTS audit_event_no_delete")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
    _create_chain_tables()
    op.execute(
        "INSERT INTO audit_chain (pos, event_seq, prev_hash, hash) "
        "SELECT seq, seq, prev_hash, hash FROM _audit_hashes ORDER BY seq"
    )
    op.execute("DROP TABLE _audit_hashes")
    for statement in SQLITE_UPGRADE:
        op.execute(statement)


# --- downgrade ---------------------------------------------------------------------------------

_OLD_AUDIT_EVENT_PG = [
    """
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()
""",
    """
CREATE FUNCTION audit_event_lock_head(OUT seq bigint, OUT hash varchar) VOLATILE
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(6003378925212091476);
    SELECT e.seq, e.hash INTO seq, hash FROM audit_event e ORDER BY e.seq DESC LIMIT 1;
END
$$
""",
]


def downgrade() -> None:
    bind = op.get_bind()
    _chain_what_is_queued(bind)
    op.execute(
        "CREATE TABLE _audit_old AS SELECT c.pos AS seq, e.id, e.recorded, e.action, e.kind, "
        "e.actor_client_id, e.actor_org_id, e.tenant_org_id, e.patient_id, e.entities, "
        "e.purpose, e.outcome, e.detail, c.prev_hash, c.hash "
        "FROM audit_chain c JOIN audit_event e ON e.seq = c.event_seq"
    )
    if bind.dialect.name == "postgresql":
        for statement in PG_DOWNGRADE_DROP:
            op.execute(statement)
    else:
        for trigger in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.drop_table("audit_unsealed")
    op.drop_table("audit_chain")
    op.drop_index("ix_audit_event_tenant_patient", table_name="audit_event")
    op.drop_table("audit_event")
    _create_old_audit_event()
    op.execute("INSERT INTO audit_event SELECT * FROM _audit_old ORDER BY seq")
    op.execute("DROP TABLE _audit_old")
    if bind.dialect.name == "postgresql":
        for statement in _OLD_AUDIT_EVENT_PG:
            op.execute(statement)
    else:
        for statement in _sqlite_append_only("audit_event"):
            op.execute(statement)


def _chain_what_is_queued(bind: sa.Connection) -> None:
    """The sealer's work, done here once: the old schema has no place for unchained events."""
    from referral_service.audit import chain

    event = sa.table(
        "audit_event",
        sa.column("seq", sa.BigInteger()),
        sa.column("id", sa.String()),
        sa.column("recorded", sa.DateTime(timezone=True)),
        *(sa.column(name, sa.String()) for name in ("action", "kind", "actor_client_id")),
        *(sa.column(name, sa.String()) for name in ("actor_org_id", "tenant_org_id")),
        *(sa.column(name, sa.String()) for name in ("patient_id", "entities", "purpose")),
        sa.column("outcome", sa.Integer()),
        sa.column("detail", sa.String()),
    )
    links = sa.table(
        "audit_chain",
        sa.column("pos", sa.BigInteger()),
        sa.column("event_seq", sa.BigInteger()),
        sa.column("prev_hash", sa.String()),
        sa.column("hash", sa.String()),
    )
    queue = sa.table("audit_unsealed", sa.column("event_seq", sa.BigInteger()))
    head = bind.execute(sa.select(links.c.pos, links.c.hash).order_by(links.c.pos.desc())).first()
    pos, prev = (int(head.pos), str(head.hash)) if head else (0, chain.GENESIS)
    chained = sa.select(links.c.pos).where(links.c.event_seq == event.c.seq).exists()
    waiting = (
        sa.select(event)
        .join(queue, queue.c.event_seq == event.c.seq)
        .where(~chained)
        .order_by(event.c.seq)
    )
    for row in bind.execute(waiting).all():
        pos += 1
        digest = chain.link_hash(prev, pos, _event(row))
        bind.execute(links.insert().values(pos=pos, event_seq=row.seq, prev_hash=prev, hash=digest))
        prev = digest


def _event(row: sa.Row[Any]) -> Event:
    from referral_service.audit.chain import Event, entities_of
    from referral_service.kit.clock import as_utc

    return Event(
        id=row.id,
        recorded=as_utc(row.recorded),
        action=row.action,
        kind=row.kind,
        actor_client_id=row.actor_client_id,
        actor_org_id=row.actor_org_id,
        tenant_org_id=row.tenant_org_id,
        patient_id=row.patient_id,
        entities=entities_of(row.entities),
        purpose=row.purpose,
        outcome=row.outcome,
        detail=row.detail,
    )


def _create_old_audit_event() -> None:
    """audit_event as migration 0007 made it."""
    op.create_table(
        "audit_event",
        sa.Column("seq", _seq_type(), autoincrement=False, nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("recorded", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=1), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor_client_id", sa.String(length=64), nullable=False),
        sa.Column("actor_org_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_org_id", sa.String(length=64), nullable=True),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("entities", sa.Text(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.SmallInteger(), nullable=False),
        sa.Column("detail", sa.String(length=255), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "action IN ('C', 'R', 'U', 'D', 'E')", name=op.f("ck_audit_event_action")
        ),
        sa.CheckConstraint("outcome IN (0, 4, 8, 12)", name=op.f("ck_audit_event_outcome")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_event")),
        sa.UniqueConstraint("id", name=op.f("uq_audit_event_id")),
    )
    op.create_index(
        "ix_audit_event_tenant_patient",
        "audit_event",
        ["tenant_org_id", "patient_id", "seq"],
        unique=False,
    )
