"""search_index: extended statistics on (resource_type, name, value) (issue 12)

PostgreSQL estimates a search value's rows from each column alone: `Task` × `status` ×
`requested` multiplied out to 118 rows where 3,001 matched, so a practice's search page was
planned as if the value were rare and sorted every match of every tenant (13–16 ms and 2,611
buffers for one page of 50 with 3,000 open Tasks; ~1 ms and 267 buffers with these statistics).
The MCV list and functional dependencies over the three columns give the planner the real
frequency of each common value. SQLite has no such statistics: nothing to do there.

Revision ID: 20261130_0020
Revises: 20261130_0019
Create Date: 2026-11-30 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "20261130_0020"
down_revision = "20261130_0019"
branch_labels = None
depends_on = None

STATISTICS = "search_index_value_stats"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"CREATE STATISTICS IF NOT EXISTS {STATISTICS} (mcv, dependencies) "
        "ON resource_type, name, value FROM search_index"
    )
    # Gathered now, so the first searches after an upgrade are planned with them; autovacuum's
    # ANALYZE keeps them current afterwards.
    op.execute("ANALYZE search_index")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP STATISTICS IF EXISTS {STATISTICS}")
