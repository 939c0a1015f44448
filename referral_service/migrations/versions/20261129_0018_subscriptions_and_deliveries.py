"""subscriptions and deliveries (issue 11)

Subscriptions (R5 backport on R4) in columns, and one delivery row per notification: the outbox
the delivery worker drains in order per subscription. Both start empty.

Revision ID: 20261129_0018
Revises: 20261129_0017
Create Date: 2026-11-29 07:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261129_0018"
down_revision = "20261129_0017"
branch_labels = None
depends_on = None


def _enum(name: str, values: list[str], length: int = 16) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=length)


def upgrade() -> None:
    op.create_table(
        "subscription",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            _enum("subscriptionstatus", ["requested", "active", "error", "off"]),
            nullable=False,
        ),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("filters", sa.Text(), nullable=False),
        sa.Column(
            "payload", _enum("payload", ["empty", "id-only", "full-resource"]), nullable=False
        ),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("endpoint", sa.String(length=2048), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("heartbeat_period_s", sa.Integer(), nullable=True),
        sa.Column("timeout_s", sa.Integer(), nullable=True),
        sa.Column("end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("events_since_start", sa.BigInteger(), nullable=False),
        sa.Column("last_delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisation.id"], name=op.f("fk_subscription_org_id_organisation")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription")),
    )
    op.create_index(op.f("ix_subscription_org_id"), "subscription", ["org_id"], unique=False)
    op.create_table(
        "delivery",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subscription_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column(
            "kind",
            _enum("deliverykind", ["handshake", "heartbeat", "event-notification"], 24),
            nullable=False,
        ),
        sa.Column("event_number", sa.BigInteger(), nullable=True),
        sa.Column("focus_type", sa.String(length=64), nullable=True),
        sa.Column("focus_id", sa.String(length=64), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            _enum("deliverystatus", ["pending", "delivered", "dead-letter", "cancelled"]),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retried_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscription.id"],
            name=op.f("fk_delivery_subscription_id_subscription"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_delivery")),
        sa.UniqueConstraint("id", name=op.f("uq_delivery_id")),
    )
    op.create_index(
        "ix_delivery_subscription_status_seq",
        "delivery",
        ["subscription_id", "status", "seq"],
        unique=False,
    )
    op.create_index(
        "ix_delivery_status_next", "delivery", ["status", "next_attempt_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_status_next", table_name="delivery")
    op.drop_index("ix_delivery_subscription_status_seq", table_name="delivery")
    op.drop_table("delivery")
    op.drop_index(op.f("ix_subscription_org_id"), table_name="subscription")
    op.drop_table("subscription")
