"""outcome report cache (issue 10)

A board's data version, bumped with every change to its outcome rows, and the reports computed
at a version, served again until it moves. Both start empty: nothing to compute.

Revision ID: 20261129_0017
Revises: 20261129_0016
Create Date: 2026-11-29 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261129_0017"
down_revision = "20261129_0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outcome_board_version",
        sa.Column("board_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["board_id"],
            ["organisation.id"],
            name=op.f("fk_outcome_board_version_board_id_organisation"),
        ),
        sa.PrimaryKeyConstraint("board_id", name=op.f("pk_outcome_board_version")),
    )
    op.create_table(
        "outcome_report_cache",
        sa.Column("board_id", sa.String(length=36), nullable=False),
        sa.Column("measure", sa.String(length=64), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("focus", sa.String(length=80), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("cells", sa.LargeBinary(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pulled_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["board_id"],
            ["organisation.id"],
            name=op.f("fk_outcome_report_cache_board_id_organisation"),
        ),
        sa.PrimaryKeyConstraint(
            "board_id",
            "measure",
            "period_start",
            "period_end",
            "focus",
            name=op.f("pk_outcome_report_cache"),
        ),
    )


def downgrade() -> None:
    op.drop_table("outcome_report_cache")
    op.drop_table("outcome_board_version")
