"""Tenancy in every statement: a row is the caller's own, or granted to it (`store.repository.
readable`). The grant must be looked up for the rows in question, by its index, and never by
reading every grant the caller's organisation holds. PostgreSQL would turn the EXISTS into a hashed
subplan, a scan of all the organisation's grants, whenever a plan estimated them many: a generic
plan shares the grants out evenly between organisations. A time bank's batch, checking the 40
shared resources it refers to, read all 69,400 grants in the bench: 5.6 ms a batch, growing with
the table."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import register
from referral_service.principal import Principal
from referral_service.store import repository
from referral_service.store.models import StoredResource

SHARED_BACK = 6_000  # the practice's: resources of the time bank's, granted to it
ROUTED = 40  # the time bank's: the practice's resources it was sent


def _grants_read(session: Session) -> tuple[int, int]:
    """Sequential scans of resource_grant in this transaction, and the rows they read."""
    row = session.execute(
        text(
            "SELECT coalesce(seq_scan, 0), coalesce(seq_tup_read, 0)"
            " FROM pg_stat_xact_user_tables WHERE relname = 'resource_grant'"
        )
    ).one()
    return int(row[0]), int(row[1])


def _resources(session: Session, prefix: str, org: str, rows: int, granted_to: str) -> None:
    session.execute(
        text(
            "INSERT INTO resource (id, type, version_id, last_updated, org_id, body)"
            " SELECT :prefix || n, 'Observation', 1, now(), :org, '' FROM generate_series(1, :rows) n"
        ),
        {"prefix": prefix, "org": org, "rows": rows},
    )
    session.execute(
        text(
            "INSERT INTO resource_grant (resource_id, org_id)"
            " SELECT :prefix || n, :to FROM generate_series(1, :rows) n"
        ),
        {"prefix": prefix, "to": granted_to, "rows": rows},
    )


def test_a_grant_is_looked_up_for_the_rows_in_question_never_by_reading_them_all(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session, session.begin():
        practice = register(session, OrgKind.PRACTICE, "Practice F84001", "F84001").id
        timebank = register(session, OrgKind.TIMEBANK, "Time bank", None).id
    as_timebank = Principal("client", timebank, OrgKind.TIMEBANK, frozenset())
    with session_factory() as session, session.begin():
        _resources(session, "back-", timebank, SHARED_BACK, granted_to=practice)
        _resources(session, "routed-", practice, ROUTED, granted_to=timebank)
        _resources(session, "private-", practice, 2, granted_to=practice)  # its own: no grant
        session.execute(text("ANALYZE resource_grant"))
        session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
        driver: Any = session.connection().connection.driver_connection
        threshold, driver.prepare_threshold = driver.prepare_threshold, 0  # prepared at once
        try:
            routed = {f"routed-{n}" for n in range(1, ROUTED + 1)}
            wanted = [*sorted(routed), "back-1", "private-1", "private-2"]
            stmt = select(StoredResource.id).where(
                StoredResource.id.in_(wanted), repository.readable(as_timebank)
            )
            for _ in range(3):  # prepared, then run on its generic plan
                before = _grants_read(session)
                found = set(session.scalars(stmt))
                after = _grants_read(session)
                # its own, and what was shared with it; not what the practice kept to itself
                assert found == {*routed, "back-1"}
                assert after == before, "resource_grant was scanned"
        finally:
            driver.prepare_threshold = threshold
