"""resource: an index in search page order, (type, last_updated, id) (issue 12)

A search page is ordered by last_updated then id, and readable() lets the caller see its own rows
or rows granted to it: an OR across tenants, so ix_resource_type_org_updated (type, org_id, ...)
cannot give the rows in page order. PostgreSQL collected every match of the type, of every tenant,
and sorted them for each page: 12-16 ms of the server's CPU for 50 of 3,400 open Tasks. With this
index it walks the type's rows newest first (backwards) or oldest first, checks each one's tenancy
and parameters, and stops at the page's end: ~0.3 ms, 0.5 with planning. A rare value is still
looked up first (ix_search_index_lookup) and sorted: the planner chooses by the value's frequency
(the statistics of migration 0020).

Revision ID: 20261201_0021
Revises: 20261130_0020
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "20261201_0021"
down_revision = "20261130_0020"
branch_labels = None
depends_on = None

INDEX = "ix_resource_type_updated"


def upgrade() -> None:
    op.create_index(INDEX, "resource", ["type", "last_updated", "id"], unique=False)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="resource")
