"""ledger: exchange descriptions, reversing entries, ended memberships

- `ledger_exchange.description`: optional free text, sealed like listing descriptions.
- `ledger_exchange.reverses_id` and `reason`: a reversal is a new exchange naming the one it
  undoes (at most one reversal each: a unique index), with the broker's reason, sealed.
- `ledger_member.ended_at` and `end_reason` (sealed): an ended membership keeps its history.

All new columns are nullable, so rows written earlier need nothing: NULL is "no description",
"not a reversal", "not ended", and a NULL is never a sealed value.

Revision ID: 20261128_0014
Revises: 20261128_0012
Create Date: 2026-11-28 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261128_0014"
down_revision = "20261128_0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _upgrade_sqlite()
        return
    with op.batch_alter_table("ledger_exchange", schema=None) as batch_op:
        batch_op.add_column(sa.Column("description", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("reverses_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.LargeBinary(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_ledger_exchange_reverses_id_ledger_exchange"),
            "ledger_exchange",
            ["reverses_id"],
            ["id"],
        )
        batch_op.create_check_constraint(
            "reversal_reason", "(reverses_id IS NULL) = (reason IS NULL)"
        )
    op.create_index("ix_ledger_exchange_reverses", "ledger_exchange", ["reverses_id"], unique=True)

    with op.batch_alter_table("ledger_member", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("end_reason", sa.LargeBinary(), nullable=True))
        batch_op.create_check_constraint("end_reason", "ended_at IS NOT NULL OR end_reason IS NULL")


def _upgrade_sqlite() -> None:
    """SQLite adds a column (even one with a REFERENCES clause) in place, but any other change
    means batch mode's copy-and-drop of the table, and dropping `ledger_exchange` or
    `ledger_member` while other ledger rows point at them fails with foreign keys on (SPIS always
    turns them on). So the columns are added in place and the two CHECKs, which SQLite cannot add
    to an existing table, are left to the service's rules there (PostgreSQL has them)."""
    op.add_column("ledger_exchange", sa.Column("description", sa.LargeBinary(), nullable=True))
    op.execute(
        "ALTER TABLE ledger_exchange ADD COLUMN reverses_id VARCHAR(36) "
        "CONSTRAINT fk_ledger_exchange_reverses_id_ledger_exchange "
        "REFERENCES ledger_exchange (id)"
    )
    op.add_column("ledger_exchange", sa.Column("reason", sa.LargeBinary(), nullable=True))
    op.create_index("ix_ledger_exchange_reverses", "ledger_exchange", ["reverses_id"], unique=True)
    op.add_column("ledger_member", sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("ledger_member", sa.Column("end_reason", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.drop_index("ix_ledger_exchange_reverses", table_name="ledger_exchange")
    if sqlite:  # in place again (DROP COLUMN, SQLite 3.35+), for the reason upgrade says
        for table, column in (
            ("ledger_member", "end_reason"),
            ("ledger_member", "ended_at"),
            ("ledger_exchange", "reason"),
            ("ledger_exchange", "reverses_id"),
            ("ledger_exchange", "description"),
        ):
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        return
    with op.batch_alter_table("ledger_member", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_ledger_member_end_reason"), type_="check")
        batch_op.drop_column("end_reason")
        batch_op.drop_column("ended_at")

    with op.batch_alter_table("ledger_exchange", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_ledger_exchange_reversal_reason"), type_="check")
        batch_op.drop_constraint(
            batch_op.f("fk_ledger_exchange_reverses_id_ledger_exchange"), type_="foreignkey"
        )
        batch_op.drop_column("reason")
        batch_op.drop_column("reverses_id")
        batch_op.drop_column("description")
