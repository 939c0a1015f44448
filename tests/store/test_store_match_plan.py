"""A conditional create's identifier match on PostgreSQL. The driver prepares its statement, and
PostgreSQL may then plan it once for any value (a generic plan) and keep that plan for the life of
the connection, while the tables grow under it: nothing re-plans it until an ANALYZE, and
autovacuum may be off or behind. The bench's connections planned it when the tables were nearly
empty: walk every resource of the type newest first, scanning search_index for each. That was
4.4 ms a match with 20,000 Patients, growing with the table, and most of PostgreSQL's time per
intake. A match must read the resources holding the value and no others, whenever it was
planned."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.context import Context
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import register
from referral_service.principal import Principal
from referral_service.store import repository, service
from referral_service.store.repository import TokenMatch

LOCAL = "https://example.org/practice-number"  # stored as given (NHS numbers are blinded)
FILLER = 5_000  # Patients added after the plan was made, each with 20 other index rows


def _numbered(value: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": LOCAL, "value": value}]}


def _rows_read(session: Session) -> dict[str, int]:
    """Rows of each table this transaction has read so far, by any scan."""
    found = session.execute(
        text(
            "SELECT relname, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
            " FROM pg_stat_xact_user_tables WHERE relname IN ('resource', 'search_index')"
        )
    )
    return {str(name): int(rows) for name, rows in found}


def _grow(session: Session, org: str) -> None:
    session.execute(
        text(
            "INSERT INTO resource (id, type, version_id, last_updated, org_id, body)"
            " SELECT 'filler-' || n, 'Patient', 1, now() + n * interval '1 ms', :org, ''"
            " FROM generate_series(1, :rows) AS n"
        ),
        {"org": org, "rows": FILLER},
    )
    session.execute(
        text(
            "INSERT INTO search_index (resource_id, position, resource_type, name, system, value)"
            " SELECT 'filler-' || n, 0, 'Patient', 'identifier', :system, 'F' || n"
            " FROM generate_series(1, :rows) AS n"
            " UNION ALL SELECT 'filler-' || n, k, 'Patient', 'p' || k, NULL, 'v' || k"
            " FROM generate_series(1, :rows) AS n, generate_series(1, 20) AS k"
        ),
        {"system": LOCAL, "rows": FILLER},
    )


def test_an_identifier_match_planned_on_small_tables_reads_only_its_matches_once_they_grow(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory() as session, session.begin():
        org = register(session, OrgKind.PRACTICE, "Practice F84001", "F84001").id
    practice = Principal("client", org, OrgKind.PRACTICE, frozenset())
    stranger = Principal("client", "another-org", OrgKind.PRACTICE, frozenset())
    with session_factory() as session, session.begin():
        session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
        driver: Any = session.connection().connection.driver_connection
        threshold, driver.prepare_threshold = driver.prepare_threshold, 0  # prepared at once
        try:
            ctx = Context(session, practice, settings)
            ids = [service.create(ctx, "Patient", _numbered(f"P{n}")).id for n in range(3)]
            cases = [
                (practice, True, "P1", [ids[1]]),
                (practice, False, "P2", [ids[2]]),
                (Principal.spis(), True, "P0", [ids[0]]),
                (practice, True, "P9", []),  # nobody has it: the costly case for the walk
                (stranger, True, "P1", []),
            ]
            for grown in (False, True):  # planned and cached on the first pass
                if grown:
                    _grow(session, org)
                for principal, with_system, value, expected in cases:
                    match = (
                        TokenMatch("identifier", value, LOCAL, system_given=True)
                        if with_system
                        else TokenMatch("identifier", value)
                    )
                    before = _rows_read(session)
                    answer = repository.match_token(session, principal, "Patient", match)
                    after = _rows_read(session)
                    assert answer is not None
                    found, more = answer
                    assert ([found.id] if found else []) == expected, value
                    assert not more
                    read = {table: after[table] - before.get(table, 0) for table in after}
                    if grown:  # small tables may be scanned whole: it is what was planned
                        assert read["resource"] <= 1, (value, read)
                        assert read["search_index"] <= 1, (value, read)
        finally:
            driver.prepare_threshold = threshold
