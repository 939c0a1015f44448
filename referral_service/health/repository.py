"""The one query readiness needs: which Alembic revisions the database is at."""

from __future__ import annotations

from sqlalchemy import Connection, inspect, text


def schema_revisions(connection: Connection) -> set[str] | None:
    """The revisions recorded in `alembic_version`; None when the database was never migrated."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
    return set(rows)
