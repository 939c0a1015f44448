"""resource_version: superseded versions only; the current version is the resource row (issue 12)

Every write stored its body twice, each copy sealed under its own associated data: in `resource`
(what reads, searches and checks open) and in `resource_version` (what vread and _history
opened). The current version's second copy is gone: a version is written to `resource_version`
when a newer one replaces it, and vread and _history take the current version from `resource`
(store/repository.py, `versions_of`). A create now seals and stores one body, not two, and a
batch of 100 questionnaires writes 200 rows fewer. This deletes the copies already stored.

Downgrade refuses while a resource has no `resource_version` row for its current version (any
resource written since): the code before this read the current version from there, and the
resource's body cannot be copied in SQL, since it is sealed to its own row.

Revision ID: 20261202_0024
Revises: 20261201_0023
Create Date: 2026-12-02 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261202_0024"
down_revision = "20261201_0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM resource_version WHERE EXISTS (SELECT 1 FROM resource"
        " WHERE resource.id = resource_version.resource_id"
        " AND resource.version_id = resource_version.version_id)"
    )


def downgrade() -> None:
    missing = op.get_bind().scalar(
        sa.text(
            "SELECT count(*) FROM resource WHERE NOT EXISTS (SELECT 1 FROM resource_version"
            " WHERE resource_version.resource_id = resource.id"
            " AND resource_version.version_id = resource.version_id)"
        )
    )
    if missing:
        raise RuntimeError(
            f"{missing} resources keep their current version only in `resource`, which the "
            "code before this migration does not read for vread and _history, and their sealed "
            "bodies cannot be copied in SQL: this migration is not undone"
        )
