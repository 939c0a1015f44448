"""search_index: keyed by (resource_id, position), no sequence and no foreign key (issue 12)

Each index row had a key from a sequence (`id`, used by nothing since migration 0008), a second
index on `resource_id`, and a foreign key to `resource` that PostgreSQL checked row by row: a
time bank's batch of 100 questionnaires writes about 1,300 index rows, so 1,300 `nextval`s,
1,300 entries in an index nothing read, and 1,300 look-ups of a resource row written in the same
statement. Measured on PostgreSQL with bench/instructions.py: 41.8 ms of its CPU a batch before,
29-34 ms after.

The key is now the resource and the row's place among its rows (`position`, from 0), which is
also the index the old `ix_search_index_resource` was: replacing a resource's rows and reading a
resource's values (`_include`, outcome refresh) use it. Index rows are written only by
store/repository.py, in the same statement as their resource (or after its update), and no
resource is ever deleted, so the foreign key and its cascade guarded nothing the write path does
not; tests/store/test_store_search_index_key.py checks that every index row has its resource.

Downgrade gives the rows an `id` again and puts the foreign key and `ix_search_index_resource`
back.

Revision ID: 20261203_0026
Revises: 20261202_0025
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261203_0026"
down_revision = "20261202_0025"
branch_labels = None
depends_on = None

# Each resource's rows numbered from 0, in the order they were written (`id`). SQLite counts the
# resource's earlier rows instead (through `ix_search_index_resource`): UPDATE ... FROM needs
# SQLite 3.33, and an embedded database is small.
NUMBERED = (
    "UPDATE search_index SET position = numbered.n FROM (SELECT id, row_number() OVER"
    " (PARTITION BY resource_id ORDER BY id) - 1 AS n FROM search_index) AS numbered"
    " WHERE numbered.id = search_index.id"
)
NUMBERED_SQLITE = (
    "UPDATE search_index SET position = (SELECT count(*) FROM search_index AS earlier"
    " WHERE earlier.resource_id = search_index.resource_id AND earlier.id < search_index.id)"
)
COLUMNS = 'resource_id, resource_type, name, system, value, start, "end"'


def upgrade() -> None:
    op.add_column("search_index", sa.Column("position", sa.Integer(), nullable=True))
    op.execute(NUMBERED if op.get_bind().dialect.name == "postgresql" else NUMBERED_SQLITE)
    with op.batch_alter_table("search_index") as batch:
        batch.drop_index("ix_search_index_resource")
        batch.drop_constraint("fk_search_index_resource_id_resource", type_="foreignkey")
        batch.drop_constraint("pk_search_index", type_="primary")
        batch.drop_column("id")
        batch.alter_column("position", existing_type=sa.Integer(), nullable=False)
        batch.create_primary_key("pk_search_index", ["resource_id", "position"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE search_index DROP CONSTRAINT pk_search_index")
        # BIGSERIAL numbers the rows already there, as the original `id` did.
        op.execute("ALTER TABLE search_index ADD COLUMN id BIGSERIAL")
        op.execute("ALTER TABLE search_index ADD CONSTRAINT pk_search_index PRIMARY KEY (id)")
        op.execute("ALTER TABLE search_index DROP COLUMN position")
        op.create_foreign_key(
            "fk_search_index_resource_id_resource",
            "search_index",
            "resource",
            ["resource_id"],
            ["id"],
            ondelete="CASCADE",
        )
        op.create_index("ix_search_index_resource", "search_index", ["resource_id"])
        return
    # SQLite: the table as migration 0001 made it, its rows copied in key order.
    op.execute("ALTER TABLE search_index RENAME TO search_index_keyed")
    op.execute("DROP INDEX ix_search_index_lookup")
    op.create_table(
        "search_index",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("system", sa.String(length=255), nullable=True),
        sa.Column("value", sa.String(length=255), nullable=True),
        sa.Column("start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["resource.id"],
            name="fk_search_index_resource_id_resource",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_search_index"),
    )
    op.execute(
        f"INSERT INTO search_index ({COLUMNS}) SELECT {COLUMNS} FROM search_index_keyed"  # noqa: S608
        " ORDER BY resource_id, position"
    )
    op.execute("DROP TABLE search_index_keyed")
    op.create_index(
        "ix_search_index_lookup", "search_index", ["resource_type", "name", "value", "resource_id"]
    )
    op.create_index("ix_search_index_resource", "search_index", ["resource_id"])
