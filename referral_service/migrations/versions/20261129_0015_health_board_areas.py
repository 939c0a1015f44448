"""health board areas: organisation.board_id

A practice or a time bank may be placed in a health board's area (`spis org add --board`,
`spis org set-board`). NULL is "in no board's area", so existing rows need nothing.

Revision ID: 20261129_0015
Revises: 20261128_0014
Create Date: 2026-11-29 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261129_0015"
down_revision = "20261128_0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # In place (see 20261128_0014): a batch copy of `organisation` would fail with the foreign
        # keys every other table holds on it.
        op.execute(
            "ALTER TABLE organisation ADD COLUMN board_id VARCHAR(36) "
            "CONSTRAINT fk_organisation_board_id_organisation REFERENCES organisation (id)"
        )
    else:
        op.add_column("organisation", sa.Column("board_id", sa.String(length=36), nullable=True))
        op.create_foreign_key(
            op.f("fk_organisation_board_id_organisation"),
            "organisation",
            "organisation",
            ["board_id"],
            ["id"],
        )
    op.create_index(op.f("ix_organisation_board_id"), "organisation", ["board_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_organisation_board_id"), table_name="organisation")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE organisation DROP COLUMN board_id")
        return
    op.drop_constraint(
        op.f("fk_organisation_board_id_organisation"), "organisation", type_="foreignkey"
    )
    op.drop_column("organisation", "board_id")
