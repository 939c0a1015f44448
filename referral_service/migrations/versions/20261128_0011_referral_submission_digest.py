"""referral_submission.digest: what a referral said when first accepted

Revision ID: 20261128_0011
Revises: 20261128_0008
Create Date: 2026-11-28 10:00:00

A resent referral (same ServiceRequest identifier) is answered as before only when its content is
the same; the digest is what it is compared with. Rows written before this revision have none and
are compared by entry types, as they were.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261128_0011"
down_revision = "20261128_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("referral_submission") as batch:
        batch.add_column(sa.Column("digest", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("referral_submission") as batch:
        batch.drop_column("digest")
