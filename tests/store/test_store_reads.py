"""A FHIR read's SQL: one SELECT (the row, tenancy and the live data keys together) and one
INSERT (its audit event). On PostgreSQL each is its own transaction (no BEGIN, no COMMIT: the
INSERT commits the event before the response), sent on the event loop by the async reads
(db.AsyncReads), none through SQLAlchemy; on SQLite both run in one transaction through
SQLAlchemy. Pinned, so that a change that adds a round trip to the hottest path shows here."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import psycopg
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.app import create_app
from referral_service.audit.models import AuditEvent
from referral_service.audit.sealer import SEALER_THREAD
from referral_service.config import Settings
from referral_service.db import in_unit_of_work, make_engine, make_sessionmaker, unit_of_work
from referral_service.keys import ring as key_ring
from referral_service.migrate import upgrade
from referral_service.organisations.models import OrgKind
from tests.conftest import TEST_KEK
from tests.fixtures.fhir import FHIR_JSON, referral_bundle
from tests.fixtures.referrals import Referral
from tests.fixtures.systems import TestSystem, bearer, register_system


@contextmanager
def _on_the_loop() -> Iterator[list[str]]:
    """The SQL sent on async psycopg connections (the async reads), seen at psycopg's cursor."""
    seen: list[str] = []
    execute = psycopg.AsyncCursor.execute

    async def watched(self: psycopg.AsyncCursor[Any], query: Any, *args: Any, **kw: Any) -> Any:
        seen.append(" ".join(str(query).split()[:3]))
        return await execute(self, query, *args, **kw)

    psycopg.AsyncCursor.execute = watched  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        psycopg.AsyncCursor.execute = execute  # type: ignore[method-assign]


@contextmanager
def _statements() -> Iterator[list[str]]:
    """The SQL the request's thread sends through SQLAlchemy: each statement, and
    BEGIN/COMMIT/ROLLBACK as such when they reach the server."""
    seen: list[str] = []

    def statement(*args: Any) -> None:
        if threading.current_thread().name != SEALER_THREAD:  # the app's audit sealer
            seen.append(" ".join(str(args[2]).split()[:3]))

    def marker(name: str) -> Any:
        def mark(conn: Connection, *_: Any) -> None:
            # In autocommit SQLAlchemy's BEGIN and COMMIT send nothing: the server sees neither.
            autocommit = getattr(conn.connection.driver_connection, "autocommit", False) is True
            if threading.current_thread().name != SEALER_THREAD and not autocommit:
                seen.append(name)

        return mark

    listeners = [
        ("before_cursor_execute", statement),
        ("begin", marker("BEGIN")),
        ("commit", marker("COMMIT")),
        ("rollback", marker("ROLLBACK")),
    ]
    for name, listener in listeners:
        event.listen(Engine, name, listener)
    try:
        yield seen
    finally:
        for name, listener in listeners:
            event.remove(Engine, name, listener)


def _events(session_factory: sessionmaker[Session], kind: str) -> int:
    with session_factory() as session:
        stmt = select(func.count()).select_from(AuditEvent).where(AuditEvent.kind == kind)
        return int(session.scalar(stmt) or 0)


READ_SQL = ["SELECT resource.id, resource.type,", "INSERT INTO audit_event"]


def test_a_read_is_one_select_and_one_audit_insert_each_committing_itself(
    client: TestClient,
    referral: Referral,
    practice_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    before = _events(session_factory, "read")
    with _statements() as seen, _on_the_loop() as looped:
        answer = client.get(f"/fhir/{referral.patient}", headers=practice_headers)
    assert answer.status_code == 200
    assert (seen, looped) == ([], READ_SQL)
    assert _events(session_factory, "read") == before + 1

    etag = answer.headers["ETag"]
    with _statements() as seen, _on_the_loop() as looped:
        unchanged = client.get(
            f"/fhir/{referral.patient}", headers={**practice_headers, "If-None-Match": etag}
        )
    assert unchanged.status_code == 304
    # A 304 is a disclosure that the version is current: audited too.
    assert (seen, looped) == ([], READ_SQL)
    assert _events(session_factory, "read") == before + 2


def test_a_vread_and_a_history_read_superseded_versions_only_when_there_are_some(
    client: TestClient, referral: Referral, practice_headers: dict[str, str]
) -> None:
    """The current version is the resource row (the read's SELECT); `resource_version` holds only
    the versions a newer one replaced, and is read only for those."""
    read, event = READ_SQL
    older = "SELECT resource_version.resource_id, resource_version.version_id,"
    task = f"/fhir/{referral.task}"
    for path in (f"{task}/_history/1", f"{task}/_history"):  # one version: the current one
        with _statements() as seen:
            answer = client.get(path, headers=practice_headers)
        assert answer.status_code == 200
        assert seen == [read, event]
    cancelled = {**client.get(task, headers=practice_headers).json(), "status": "cancelled"}
    cancelled["statusReason"] = {"text": "Patient moved away"}
    put = client.put(task, json=cancelled, headers={**practice_headers, **FHIR_JSON})
    assert put.status_code == 200, put.text
    for path, shown, statements in (
        (f"{task}/_history/2", ["cancelled"], [read, event]),
        (f"{task}/_history/1", ["requested"], [read, older, event]),
        (f"{task}/_history", ["cancelled", "requested"], [read, older, event]),
    ):
        with _statements() as seen:
            answer = client.get(path, headers=practice_headers)
        assert answer.status_code == 200
        found = answer.json()
        resources = [e["resource"] for e in found["entry"]] if "entry" in found else [found]
        assert [r["status"] for r in resources] == shown
        assert seen == statements


def test_a_search_page_is_one_select_and_one_audit_insert_each_committing_itself(
    client: TestClient,
    referral: Referral,
    practice_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    """A search writes nothing but its one event (one however many patients the page shows), so
    it runs as a read does: no BEGIN or COMMIT reaches the server. The page every practice polls
    (a prepared statement: `repository.fixed_page_known`) is answered on the event loop as a read
    is; any other page in a worker thread."""
    before = _events(session_factory, "search")
    for _ in range(2):  # the first run prepares the page's statement, the second runs it
        with _statements() as seen, _on_the_loop() as looped:
            answer = client.get("/fhir/Task?status=requested&_count=50", headers=practice_headers)
        assert answer.status_code == 200
        assert len(answer.json()["entry"]) == 1
        assert (seen, looped) == ([], READ_SQL)
    with _statements() as seen, _on_the_loop() as looped:
        answer = client.get(f"/fhir/Task?patient={referral.patient}", headers=practice_headers)
    assert answer.status_code == 200
    assert len(answer.json()["entry"]) == 1
    assert (seen, looped) == (READ_SQL, [])
    assert _events(session_factory, "search") == before + 3


def test_another_tenants_read_is_one_select_then_its_refusal_audited_apart(
    client: TestClient,
    referral: Referral,
    practice_b: TestSystem,
    practice_b_headers: dict[str, str],
) -> None:
    with _statements() as seen, _on_the_loop() as looped:
        answer = client.get(f"/fhir/{referral.patient}", headers=practice_b_headers)
    assert answer.status_code == 404  # tenancy is in the query: as if the row did not exist
    assert looped == [READ_SQL[0]]
    assert seen == ["BEGIN", "INSERT INTO audit_event", "COMMIT"]


def test_a_read_on_sqlite_runs_the_same_statements_through_sqlalchemy(tmp_path: Path) -> None:
    """The embedded default has no psycopg: the same built-once statements, executed as usual."""
    settings = Settings(
        environment="test", var_dir=tmp_path / "var", public_base_url="http://testserver"
    )
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    practice = register_system(make_sessionmaker(engine), OrgKind.PRACTICE, ods="F84001")
    try:
        with TestClient(create_app(settings)) as client:
            headers = bearer(client, practice)
            made = client.post(
                "/fhir", json=referral_bundle(practice.org_id), headers={**headers, **FHIR_JSON}
            )
            patient = "/".join(made.json()["entry"][0]["response"]["location"].split("/")[:2])
            with _statements() as seen:
                answer = client.get(f"/fhir/{patient}", headers=headers)
            assert answer.status_code == 200
            assert answer.json()["identifier"][0]["value"] == "9434765919"
            # SQLite chains the event in the same transaction (audit/pending.py): the rest.
            assert seen[:3] == ["BEGIN", *READ_SQL]
            assert seen[-1] == "COMMIT"
    finally:
        engine.dispose()


def test_a_read_leaves_its_pooled_connection_in_transactions_again(pg_url: str) -> None:
    """Autocommit is the read's alone: the next unit of work on the same connection is a
    transaction, as every write needs."""
    engine = make_engine(pg_url, pool_size=1, max_overflow=0)  # the same connection each time
    key_ring.register(engine, TEST_KEK)
    factory = make_sessionmaker(engine)

    def autocommit(session: Session) -> bool:
        return getattr(session.connection().connection.driver_connection, "autocommit", None)

    try:
        assert anyio.run(partial(in_unit_of_work, factory, autocommit, autocommit=True)) is True
        assert anyio.run(in_unit_of_work, factory, autocommit) is False
        with unit_of_work(factory) as session:
            assert autocommit(session) is False
    finally:
        engine.dispose()
