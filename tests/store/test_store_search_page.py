"""A search page on PostgreSQL: planned for its own values on every run (never a server-side
prepared statement, whose generic plan ignored them) unless every value is SPIS's own and written
into the statement (a known code, the tenant, the page), in a total order that is walked the same
way forwards and backwards (ix_resource_type_updated), with the tenancy filter in the query."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.search_params import parse_search_date
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import register
from referral_service.principal import Principal
from referral_service.store import repository, service
from referral_service.store.models import StoredResource
from referral_service.store.repository import DateMatch, IdMatch, Query, TokenMatch

FEMALE = [[TokenMatch("gender", "female")]]


def _patient(gender: str = "female") -> dict[str, Any]:
    return {"resourceType": "Patient", "gender": gender}


def _practice(session_factory: sessionmaker[Session], ods: str = "F84001") -> Principal:
    with session_factory() as session, session.begin():
        org = register(session, OrgKind.PRACTICE, f"Practice {ods}", ods).id
    return Principal("client", org, OrgKind.PRACTICE, frozenset())


def _prepared_searches(connection: Connection) -> list[str]:
    """This connection's prepared statements that search (not the inserts the pool prepared)."""
    found = connection.scalars(text("SELECT statement FROM pg_prepared_statements"))
    return [str(s) for s in found if str(s).startswith("SELECT") and "search_index" in str(s)]


def test_a_search_page_is_never_a_prepared_statement(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    principal = _practice(session_factory)
    with session_factory() as session, session.begin():
        ctx = Context(session, principal, settings)
        for _ in range(3):
            service.create(ctx, "Patient", _patient())
    with session_factory() as session, session.begin():
        connection = session.connection()
        driver: Any = connection.connection.driver_connection
        threshold = driver.prepare_threshold
        assert threshold is not None  # psycopg prepares what it runs often: what is avoided
        for _ in range(threshold * 3):
            found, more = repository.search_page(
                session, principal, "Patient", FEMALE, count=2, offset=0
            )
            assert (len(found), more) == (2, True)
            assert repository.count(session, principal, "Patient", FEMALE) == 3
            found = repository.search(session, principal, "Patient", FEMALE, limit=5, offset=0)
            assert len(found) == 3
        assert not _prepared_searches(connection)
        assert driver.prepare_threshold == threshold
        # The same statement run outside is prepared: the check above can fail.
        stmt = select(StoredResource.id).where(repository._clause("Patient", FEMALE[0]))
        for _ in range(threshold * 3):
            connection.execute(stmt).all()
        assert _prepared_searches(connection)


def _walk(
    session: Session, principal: Principal, *, newest_first: bool, count: int = 2
) -> list[str]:
    ids: list[str] = []
    offset, more = 0, True
    while more:
        found, more = repository.search_page(
            session,
            principal,
            "Patient",
            FEMALE,
            count=count,
            offset=offset,
            newest_first=newest_first,
        )
        assert len(found) == count or not more
        ids += [row.id for row in found]
        offset += count
    return ids


def test_pages_are_newest_first_ties_by_id_and_oldest_first_is_the_exact_reverse(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    principal = _practice(session_factory)
    other = _practice(session_factory, "F84002")
    with session_factory() as session, session.begin():
        ctx = Context(session, principal, settings)
        made = [service.create(ctx, "Patient", _patient()).id for _ in range(7)]
        service.create(ctx, "Patient", _patient("male"))
        theirs = service.create(Context(session, other, settings), "Patient", _patient()).id
    base = datetime(2026, 1, 1, tzinfo=UTC)
    stamps = [base, base, base + timedelta(1), base + timedelta(1), base + timedelta(1),
              base + timedelta(2), base + timedelta(3)]  # fmt: skip
    with session_factory() as session, session.begin():
        for rid, stamp in zip(made, stamps, strict=True):
            session.execute(
                update(StoredResource).where(StoredResource.id == rid).values(last_updated=stamp)
            )
    expected = [rid for _, rid in sorted(zip(stamps, made, strict=True), reverse=True)]
    with session_factory() as session, session.begin():
        newest = _walk(session, principal, newest_first=True)
        oldest = _walk(session, principal, newest_first=False)
        assert newest == expected  # every match once, none of the other practice's
        assert oldest == expected[::-1]
        assert _walk(session, principal, newest_first=True, count=7) == expected
        assert theirs not in newest
        bodies, _ = repository.search_page(session, principal, "Patient", FEMALE, count=1, offset=0)
        assert bodies[0].body.startswith(b"{")  # opened with the key ring


def test_a_common_value_walks_the_page_order_and_stops_at_the_page_end(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    principal = _practice(session_factory)
    with session_factory() as session, session.begin():
        ctx = Context(session, principal, settings)
        for _ in range(300):
            service.create(ctx, "Patient", _patient())
    with session_factory() as session, session.begin():
        session.execute(text("ANALYZE resource"))
        session.execute(text("ANALYZE search_index"))
    with session_factory() as session, session.begin():
        stmt = (
            select(StoredResource.id)
            .where(
                StoredResource.type == "Patient",
                repository.readable(principal),
                repository._clause("Patient", FEMALE[0]),
            )
            .order_by(*repository._page_order(True))
            .limit(51)
        )
        sql = stmt.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
        plan = "\n".join(session.scalars(text(f"EXPLAIN {sql}")))
    assert "ix_resource_type_updated" in plan, plan
    assert "Sort" not in plan, plan


def test_one_statement_per_query_shape_serves_every_caller_and_value(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """A page's statement is built once per shape and takes its values, the tenant's too, as
    parameters: each caller and value finds what the statement built for it would find."""
    ours, theirs = _practice(session_factory), _practice(session_factory, "F84002")
    nhs = "https://fhir.nhs.uk/Id/nhs-number"
    with session_factory() as session, session.begin():
        mine = Context(session, ours, settings)
        other = Context(session, theirs, settings)
        for _ in range(2):
            service.create(mine, "Patient", _patient())
        man = service.create(mine, "Patient", _patient("male")).id
        numbered = {**_patient(), "identifier": [{"system": nhs, "value": "9990000018"}]}
        their_numbered = service.create(other, "Patient", numbered).id
        their_woman = service.create(other, "Patient", _patient()).id
    day = parse_search_date("2020-01-01")
    queries: list[Query] = [
        [[TokenMatch("gender", "female")]],
        [[TokenMatch("gender", "male")]],
        [[TokenMatch("gender", "female"), TokenMatch("gender", "male")]],
        [[TokenMatch("gender", "female", own_only=ours.org_id)]],
        [[TokenMatch("identifier", "9990000018", nhs, system_given=True)]],
        [[TokenMatch("identifier", "9990000018", None, system_given=True)]],
        [[TokenMatch("gender", None)], [IdMatch(man)]],
        [[DateMatch("_lastUpdated", "gt", *day[1:])]],
        [[DateMatch("_lastUpdated", "lt", *day[1:])]],
        [],
    ]
    repository._PAGES.clear()
    with session_factory() as session, session.begin():
        for principal in (ours, theirs, ours):
            for query in queries:
                page, _ = repository.search_page(
                    session, principal, "Patient", query, count=10, offset=0
                )
                plain = repository.search(session, principal, "Patient", query, limit=10, offset=0)
                assert [r.id for r in page] == [r.id for r in plain], query
        assert len(repository._PAGES) == len(queries) - 1  # female and male: one shape
        found, _ = repository.search_page(session, theirs, "Patient", FEMALE, count=10, offset=0)
        assert {r.id for r in found} == {their_woman, their_numbered}


def _task(status: str) -> dict[str, Any]:
    return {"resourceType": "Task", "status": status, "intent": "order"}


def test_a_page_of_known_codes_only_is_prepared_with_every_value_written_in(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """`Task?status=requested`, polled by every practice: a server-side prepared statement with
    no parameter (the codes SPIS's own, the tenant and the page numbers written in), so that its
    plan is made for exactly those values and kept. It finds, for each tenant, page and order,
    what the page planned on every run finds; any other value is still a parameter."""
    ours, theirs = _practice(session_factory), _practice(session_factory, "F84002")
    with session_factory() as session, session.begin():
        mine, other = Context(session, ours, settings), Context(session, theirs, settings)
        for status in ("requested", "requested", "requested", "accepted", "ready"):
            service.create(mine, "Task", _task(status))
        service.create(other, "Task", _task("requested"))
    requested = [[TokenMatch("status", "requested")]]
    either = [[TokenMatch("status", "requested"), TokenMatch("status", "accepted")]]
    not_ours = [[TokenMatch("status", "ready")]], [[TokenMatch("status", "x'); --")]]
    repository._FIXED_PAGES.clear()
    with session_factory() as session, session.begin():
        connection = session.connection()
        for principal in (ours, theirs):
            for query in (requested, either, *not_ours):
                for count, offset, newest_first in [(2, 0, True), (2, 2, True), (5, 0, False)]:
                    page, more = repository.search_page(
                        session, principal, "Task", query, count=count, offset=offset,
                        newest_first=newest_first,
                    )  # fmt: skip
                    plain = repository.search(
                        session, principal, "Task", query, limit=count + 1, offset=offset,
                        newest_first=newest_first,
                    )  # fmt: skip
                    assert [r.id for r in page] == [r.id for r in plain[:count]], query
                    assert more == (len(plain) > count)
        assert len(repository._FIXED_PAGES) == 2 * 2 * 3  # tenants, queries, pages
        prepared = connection.execute(
            text(
                "SELECT statement, parameter_types FROM pg_prepared_statements "
                "WHERE statement LIKE 'SELECT%search_index%'"
            )
        ).all()
        assert len(prepared) == 2 * 2 * 3
        for statement, parameter_types in prepared:
            assert parameter_types in ("{}", []), statement  # every value written in
            assert "'requested'" in statement
            assert "ready" not in statement
            assert "x'" not in statement
        found, _ = repository.search_page(session, theirs, "Task", requested, count=9, offset=0)
        assert len(found) == 1  # the other practice's own Task only


def test_a_page_of_known_codes_is_planned_as_per_run_where_not_postgresql_or_for_spis(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        connection = session.connection()
        requested = [[TokenMatch("status", "requested")]]
        spis = Principal.spis()
        assert (
            repository.fixed_page(connection.dialect, spis, "Task", requested, True, 5, 0) is None
        )
        odd = Principal("client", "not-a-uuid'", OrgKind.PRACTICE, frozenset())
        assert repository.fixed_page(connection.dialect, odd, "Task", requested, True, 5, 0) is None
        own = [[TokenMatch("status", "requested", own_only="x")]]
        practice = Principal(
            "c", "5c1e8a0e-9d7b-4c55-9a43-2f1f3b0e8d11", OrgKind.PRACTICE, frozenset()
        )
        assert repository.fixed_page(connection.dialect, practice, "Task", own, True, 5, 0) is None
        assert (
            repository.fixed_page(connection.dialect, practice, "Patient", FEMALE, True, 5, 0)
            is None
        )
        assert repository.fixed_page(connection.dialect, practice, "Task", requested, True, 5, 0)
