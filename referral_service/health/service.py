"""Readiness: the database answers, its schema is at the head revision, the broker answers.

Each check yields "ok" or a short reason. Reasons name an error class or a revision, never a
host, a URL or an error message (the endpoint is unauthenticated).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from referral_service.health import repository

OK = "ok"
BROKER_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class Readiness:
    checks: dict[str, str]

    @property
    def failed(self) -> list[str]:
        return [name for name, result in self.checks.items() if result != OK]

    @property
    def ready(self) -> bool:
        return not self.failed


def readiness(engine: Engine, broker: Any) -> Readiness:
    """`broker` is the Celery app the API sends jobs with."""
    database, migrations = _database_checks(engine)
    return Readiness({"database": database, "migrations": migrations, "broker": _broker(broker)})


@cache
def migration_heads() -> frozenset[str]:
    """The head revisions shipped with this code (read once: they cannot change while running)."""
    from alembic.script import ScriptDirectory

    from referral_service.migrate import MIGRATIONS

    return frozenset(ScriptDirectory(str(MIGRATIONS)).get_heads())


def _database_checks(engine: Engine) -> tuple[str, str]:
    try:
        with engine.connect() as connection:
            revisions = repository.schema_revisions(connection)
    except SQLAlchemyError as exc:
        return f"unreachable ({type(exc).__name__})", "unknown: the database is unreachable"
    heads = migration_heads()
    if revisions is None:
        return OK, "not migrated: run `spis migrate`"
    if revisions != heads:
        found = ", ".join(sorted(revisions)) or "no revision"
        return OK, f"at {found}, expected {', '.join(sorted(heads))}: run `spis migrate`"
    return OK, OK


def _broker(app: Any) -> str:
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_TIMEOUT_S)
    except Exception as exc:  # each kombu transport raises its own errors
        return f"unreachable ({type(exc).__name__})"
    return OK
