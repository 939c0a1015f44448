"""search_index lookup index ends with resource_id

Revision ID: 20261128_0012
Revises: 20261128_0011
Create Date: 2026-11-28 20:40:00

Every search parameter is a correlated EXISTS on search_index (resource_id, type, name, value).
With resource_id missing from the lookup index, SQLite walked every row with that name and value
for each candidate resource: counting a time bank's open Tasks (routing, every referral) grew with
the square of the referrals it held (0.59 s at 640), and the embedded default answered 503s under
ordinary load. With it, the lookup is one index seek (5 ms at 640).
"""

from __future__ import annotations

from alembic import op

revision = "20261128_0012"
down_revision = "20261128_0011"
branch_labels = None
depends_on = None

OLD = ["resource_type", "name", "value"]
NEW = [*OLD, "resource_id"]


def upgrade() -> None:
    op.drop_index("ix_search_index_lookup", table_name="search_index")
    op.create_index("ix_search_index_lookup", "search_index", NEW)


def downgrade() -> None:
    op.drop_index("ix_search_index_lookup", table_name="search_index")
    op.create_index("ix_search_index_lookup", "search_index", OLD)
