"""audit: the queue's delete guard checks a whole statement at once (issue 12)

audit_unsealed_guard refused, row by row, removing a queue row whose event is not chained. The
sealer dequeues a turn's events (up to 1,000) in one DELETE, so the per-row trigger was called
once per event (~4.7 µs of the ~6 µs each dequeued row cost). It is now a statement-level AFTER
DELETE trigger with a transition table: one anti-join of the deleted rows against audit_chain,
raising (so the whole DELETE rolls back) if any of them is not chained; the same error, code and
message as before. Changing a queue row is still refused by a row-level trigger
(audit_unsealed_no_update; never run by SPIS). SQLite keeps its row triggers: nothing changes.

Revision ID: 20261201_0022
Revises: 20261201_0021
Create Date: 2026-12-01 12:00:00
"""

from __future__ import annotations

from alembic import op

revision = "20261201_0022"
down_revision = "20261201_0021"
branch_labels = None
depends_on = None

PG_UPGRADE = [
    "DROP TRIGGER audit_unsealed_guard ON audit_unsealed",
    # Row-level, for UPDATE only: the function of migration 0019 refuses any UPDATE.
    """
CREATE TRIGGER audit_unsealed_no_update BEFORE UPDATE ON audit_unsealed
FOR EACH ROW EXECUTE FUNCTION audit_unsealed_guard()
""",
    """
CREATE FUNCTION audit_unsealed_guard_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM gone g
        WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_seq = g.event_seq)
    ) THEN
        RAISE EXCEPTION 'audit_unsealed: an event leaves the queue only once chained (% refused)',
            TG_OP USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$$
""",
    # Same name as before, so the owner's tooling and the app role's refusals name it as before.
    """
CREATE TRIGGER audit_unsealed_guard AFTER DELETE ON audit_unsealed
REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION audit_unsealed_guard_deleted()
""",
]
PG_DOWNGRADE = [
    "DROP TRIGGER audit_unsealed_guard ON audit_unsealed",
    "DROP FUNCTION audit_unsealed_guard_deleted()",
    "DROP TRIGGER audit_unsealed_no_update ON audit_unsealed",
    """
CREATE TRIGGER audit_unsealed_guard BEFORE UPDATE OR DELETE ON audit_unsealed
FOR EACH ROW EXECUTE FUNCTION audit_unsealed_guard()
""",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in PG_UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in PG_DOWNGRADE:
            op.execute(statement)
