"""audit trail: the append-only, hash-chained audit_event table

Revision ID: 20261125_0007
Revises: 20261125_0006
Create Date: 2026-11-25 16:02:11.402118

Triggers refuse UPDATE and DELETE for every role, the owner included (an owner can still disable
them, so in production the application connects as a role that does not own the table). Also take
the rights away from that role, which covers TRUNCATE too (no trigger blocks TRUNCATE here: the
test suite empties every table with it):

    REVOKE UPDATE, DELETE, TRUNCATE ON audit_event FROM spis_app;
    GRANT SELECT, INSERT ON audit_event TO spis_app;
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261125_0007"
down_revision = "20261125_0006"
branch_labels = None
depends_on = None

# 42501 is what a REVOKEd right raises too: the same error whichever guard stops the change.
PG_FUNCTION = """
CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_event is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""
PG_TRIGGER = """
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()
"""
# The append lock and the chain head in one round trip (the lock is held until commit, so every
# round trip under it limits how many events the whole system appends per second). VOLATILE: the
# SELECT takes its snapshot after the lock is granted, so it sees the previous appender's row.
# 6003378925212091476 is "SPISAUDT" as a 64-bit integer.
PG_LOCK_HEAD = """
CREATE FUNCTION audit_event_lock_head(OUT seq bigint, OUT hash varchar) VOLATILE
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(6003378925212091476);
    SELECT e.seq, e.hash INTO seq, hash FROM audit_event e ORDER BY e.seq DESC LIMIT 1;
END
$$
"""
SQLITE_TRIGGERS = [
    f"""
CREATE TRIGGER audit_event_no_{op_name.lower()} BEFORE {op_name} ON audit_event
BEGIN
    SELECT RAISE(ABORT, 'audit_event is append-only: {op_name} refused');
END
"""
    for op_name in ("UPDATE", "DELETE")
]


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
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
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_event_tenant_patient", ["tenant_org_id", "patient_id", "seq"], unique=False
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
        op.execute(PG_LOCK_HEAD)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_event_lock_head()")
        op.execute("DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event")
        op.execute("DROP FUNCTION IF EXISTS audit_event_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_delete")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_tenant_patient")

    op.drop_table("audit_event")
