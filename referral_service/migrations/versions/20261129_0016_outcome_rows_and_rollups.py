"""outcome rows and rollups (issue 10)

Per-referral outcome rows, time banks' declines, monthly activity and partner rollups, chosen
baseline and follow-up scores, and boards' programme costs. All derived except the costs: an
existing database gets its rows from `spis outcomes rebuild` (bodies are sealed, so a migration
cannot compute them).

Revision ID: 20261129_0016
Revises: 20261129_0015
Create Date: 2026-11-29 00:20:57.903685
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261129_0016"
down_revision = "20261129_0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outcome_programme_cost",
        sa.Column("board_id", sa.String(length=36), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("amount_pence", sa.Integer(), nullable=False),
        sa.Column("entered_by", sa.String(length=80), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["board_id"],
            ["organisation.id"],
            name=op.f("fk_outcome_programme_cost_board_id_organisation"),
        ),
        sa.PrimaryKeyConstraint(
            "board_id", "period_start", "period_end", name=op.f("pk_outcome_programme_cost")
        ),
    )
    op.create_table(
        "outcome_referral",
        sa.Column("referral_id", sa.String(length=64), nullable=False),
        sa.Column("practice_id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("timebank_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("routed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_exchange_on", sa.Date(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rejected_reason", sa.String(length=40), nullable=True),
        sa.Column("member_id", sa.String(length=36), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_gift_on", sa.Date(), nullable=True),
        sa.Column("eligible", sa.Boolean(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["practice_id"],
            ["organisation.id"],
            name=op.f("fk_outcome_referral_practice_id_organisation"),
        ),
        sa.ForeignKeyConstraint(
            ["timebank_id"],
            ["organisation.id"],
            name=op.f("fk_outcome_referral_timebank_id_organisation"),
        ),
        sa.PrimaryKeyConstraint("referral_id", name=op.f("pk_outcome_referral")),
    )
    with op.batch_alter_table("outcome_referral", schema=None) as batch_op:
        batch_op.create_index("ix_outcome_referral_patient", ["patient_id"], unique=False)
        batch_op.create_index(
            "ix_outcome_referral_practice_enrolled", ["practice_id", "enrolled_at"], unique=False
        )
        batch_op.create_index(
            "ix_outcome_referral_practice_received", ["practice_id", "received_at"], unique=False
        )

    op.create_table(
        "outcome_activity",
        sa.Column("referral_id", sa.String(length=64), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("minutes_given", sa.Integer(), nullable=False),
        sa.Column("minutes_received", sa.Integer(), nullable=False),
        sa.Column("exchanges", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["outcome_referral.referral_id"],
            name=op.f("fk_outcome_activity_referral_id_outcome_referral"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("referral_id", "month", name=op.f("pk_outcome_activity")),
    )
    with op.batch_alter_table("outcome_activity", schema=None) as batch_op:
        batch_op.create_index("ix_outcome_activity_month", ["month", "referral_id"], unique=False)

    op.create_table(
        "outcome_decline",
        sa.Column("referral_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("timebank_id", sa.String(length=36), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("declined_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["outcome_referral.referral_id"],
            name=op.f("fk_outcome_decline_referral_id_outcome_referral"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["timebank_id"],
            ["organisation.id"],
            name=op.f("fk_outcome_decline_timebank_id_organisation"),
        ),
        sa.PrimaryKeyConstraint("referral_id", "task_id", name=op.f("pk_outcome_decline")),
    )
    op.create_table(
        "outcome_partner",
        sa.Column("referral_id", sa.String(length=64), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("partner_member_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["outcome_referral.referral_id"],
            name=op.f("fk_outcome_partner_referral_id_outcome_referral"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "referral_id", "month", "partner_member_id", name=op.f("pk_outcome_partner")
        ),
    )
    op.create_table(
        "outcome_score",
        sa.Column("referral_id", sa.String(length=64), nullable=False),
        sa.Column("scale", sa.String(length=40), nullable=False),
        sa.Column("baseline", sa.Float(), nullable=False),
        sa.Column("baseline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("follow_up", sa.Float(), nullable=True),
        sa.Column("follow_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["outcome_referral.referral_id"],
            name=op.f("fk_outcome_score_referral_id_outcome_referral"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("referral_id", "scale", name=op.f("pk_outcome_score")),
    )
    with op.batch_alter_table("outcome_score", schema=None) as batch_op:
        batch_op.create_index("ix_outcome_score_follow_up", ["scale", "follow_up_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outcome_score", schema=None) as batch_op:
        batch_op.drop_index("ix_outcome_score_follow_up")

    op.drop_table("outcome_score")
    op.drop_table("outcome_partner")
    op.drop_table("outcome_decline")
    with op.batch_alter_table("outcome_activity", schema=None) as batch_op:
        batch_op.drop_index("ix_outcome_activity_month")

    op.drop_table("outcome_activity")
    with op.batch_alter_table("outcome_referral", schema=None) as batch_op:
        batch_op.drop_index("ix_outcome_referral_practice_received")
        batch_op.drop_index("ix_outcome_referral_practice_enrolled")
        batch_op.drop_index("ix_outcome_referral_patient")

    op.drop_table("outcome_referral")
    op.drop_table("outcome_programme_cost")
