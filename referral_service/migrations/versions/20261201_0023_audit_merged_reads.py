"""audit: a read of several patients is one stored event, with its groups (issue 12)

A read, history or search that returned the data of several tenants or patients was stored as
one audit_event per (tenant, patient), as IHE BALP presents it: ~50 events for a search page,
each ~80 µs of CPU to record and seal, most of what the search cost. It is now one event:
audit_event.entity_groups (hashed with the event; null for every other event, which hashes as
before) names whose each run of its entities is, and audit_event_group holds one row per group
so that a tenant's or a patient's events stay an indexed lookup. audit_event_group is
append-only like audit_event (triggers; the app role is refused UPDATE and DELETE by `spis
migrate`), and `spis audit verify` checks it against the hashed groups and that each row names an
event with groups. It has no foreign key to audit_event: that check, once per row, was about a
third of what writing the rows cost, and guarded nothing verify does not.

Downgrade refuses while a merged event exists: without its groups it would no longer verify.

Revision ID: 20261201_0023
Revises: 20261201_0022
Create Date: 2026-12-01 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261201_0023"
down_revision = "20261201_0022"
branch_labels = None
depends_on = None

# 42501, as a REVOKEd right raises (migrations 0007 and 0019).
PG_UPGRADE = [
    """
CREATE FUNCTION audit_event_group_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_event_group is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
""",
    """
CREATE TRIGGER audit_event_group_append_only BEFORE UPDATE OR DELETE ON audit_event_group
FOR EACH ROW EXECUTE FUNCTION audit_event_group_append_only()
""",
]
PG_DOWNGRADE = [
    "DROP TRIGGER audit_event_group_append_only ON audit_event_group",
    "DROP FUNCTION audit_event_group_append_only()",
]
SQLITE_UPGRADE = [
    f"""
CREATE TRIGGER audit_event_group_no_{op_name.lower()} BEFORE {op_name} ON audit_event_group
BEGIN
    SELECT RAISE(ABORT, 'audit_event_group is append-only: {op_name} refused');
END
"""
    for op_name in ("UPDATE", "DELETE")
]
SQLITE_DOWNGRADE = [
    "DROP TRIGGER audit_event_group_no_update",
    "DROP TRIGGER audit_event_group_no_delete",
]


def upgrade() -> None:
    op.add_column("audit_event", sa.Column("entity_groups", sa.Text(), nullable=True))
    op.create_table(
        "audit_event_group",
        sa.Column("event_seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("grp", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("tenant_org_id", sa.String(length=64), nullable=True),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("event_seq", "grp", name=op.f("pk_audit_event_group")),
    )
    op.create_index(
        "ix_audit_event_group_tenant_patient",
        "audit_event_group",
        ["tenant_org_id", "patient_id", "event_seq", "grp"],
        unique=False,
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in PG_UPGRADE if postgres else SQLITE_UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    merged = bind.scalar(
        sa.text("SELECT count(*) FROM audit_event WHERE entity_groups IS NOT NULL")
    )
    if merged:
        raise RuntimeError(
            f"{merged} audit events cover several patients: without entity_groups they would no "
            "longer verify, so this migration is not undone"
        )
    postgres = bind.dialect.name == "postgresql"
    for statement in PG_DOWNGRADE if postgres else SQLITE_DOWNGRADE:
        op.execute(statement)
    op.drop_index("ix_audit_event_group_tenant_patient", table_name="audit_event_group")
    op.drop_table("audit_event_group")
    # Plain ALTER on SQLite too (3.35+): batch mode would copy the table and drop its triggers.
    op.execute("ALTER TABLE audit_event DROP COLUMN entity_groups")
