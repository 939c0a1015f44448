"""`spis migrate`: Alembic upgrade to head, on SQLite or PostgreSQL alike."""

from __future__ import annotations

import re
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"  # shipped inside the package


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    from referral_service.db import make_engine

    engine = make_engine(database_url)  # creates the SQLite directory when needed
    engine.dispose()
    command.upgrade(alembic_config(database_url), revision)


# -- the application's database role (PostgreSQL) -------------------------------------------------
#
# The role that runs migrations owns the tables, and an owner can disable the triggers that keep
# the audit tables append-only. The API, worker and beat connect as another role with only the
# rights they use: rows in, out and changed, but no UPDATE or DELETE on audit_event, audit_chain
# or audit_event_group, no UPDATE on audit_unsealed (its rows leave only once chained: a trigger
# checks) and no writes to alembic_version; never TRUNCATE, ALTER, or trigger changes (those need
# ownership).
# Granted again on every `spis migrate`, so tables added by later migrations are covered too.

APP_ROLE_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_APP_GRANTS = (
    "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
    "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}",
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
    "REVOKE UPDATE, DELETE ON audit_event, audit_chain, audit_event_group FROM {role}",
    "REVOKE UPDATE ON audit_unsealed FROM {role}",
    "REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {role}",
    "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
)


class AppRoleError(ValueError):
    """The application role cannot be set up as asked (a bad name, no password, not PostgreSQL)."""


def grant_app_role(database_url: str, role: str, password: str | None) -> bool:
    """Create `role` (LOGIN, no other attributes) if it does not exist, set its password when
    given, and grant it exactly the application's rights. True when the role was created."""
    from sqlalchemy import text

    from referral_service.db import make_engine

    if not APP_ROLE_PATTERN.match(role):
        raise AppRoleError("SPIS_APP_DATABASE_ROLE must be a lower-case PostgreSQL role name")
    engine = make_engine(database_url)
    try:
        if engine.dialect.name != "postgresql":
            raise AppRoleError("SPIS_APP_DATABASE_ROLE needs PostgreSQL (SQLite has no roles)")
        with engine.begin() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
            if not exists and not password:
                raise AppRoleError(
                    f"role {role} does not exist: set SPIS_APP_DATABASE_PASSWORD to create it"
                )
            if not exists or password:
                verb = "ALTER" if exists else "CREATE"
                # format() quotes the name and the password server-side: both stay parameters.
                statement = conn.scalar(
                    text(
                        f"SELECT format('{verb} ROLE %I LOGIN PASSWORD %L', CAST(:r AS text), CAST(:p AS text))"
                    ),
                    {"r": role, "p": password},
                )
                conn.execute(text(str(statement)))
            for grant in _APP_GRANTS:
                conn.execute(text(grant.format(role=f'"{role}"')))
    finally:
        engine.dispose()
    return not exists
