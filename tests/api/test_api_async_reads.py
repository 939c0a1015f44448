"""The async reads (db.AsyncReads): on PostgreSQL a FHIR read is answered on the event loop, its
audit event the one the ordinary path records, committed before the answer; whenever that path
must answer instead (a data key not cached yet, a pool that cannot reach the database) it does,
and the read is still answered and audited once."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit.models import AuditEvent
from referral_service.db import AsyncReads, make_engine
from referral_service.keys import ring
from tests.conftest import ADMIN_URL
from tests.fixtures.referrals import Referral, make_referral
from tests.fixtures.server import nhs_numbers
from tests.fixtures.systems import TestSystem
from tests.store.test_store_reads import READ_SQL, _on_the_loop, _statements

_COMPARED = (
    "action",
    "kind",
    "actor_client_id",
    "actor_org_id",
    "tenant_org_id",
    "patient_id",
    "entities",
    "purpose",
    "outcome",
    "detail",
    "entity_groups",
)


def _read_events(session_factory: sessionmaker[Session]) -> list[dict[str, Any]]:
    with session_factory() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.kind == "read").order_by(AuditEvent.seq)
        ).all()
        return [{name: getattr(row, name) for name in _COMPARED} for row in rows]


def test_a_read_on_the_loop_records_the_event_the_ordinary_path_records(
    client: TestClient,
    referral: Referral,
    practice_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    before = len(_read_events(session_factory))
    with _statements() as seen, _on_the_loop() as looped:
        looped_answer = client.get(f"/fhir/{referral.service_request}", headers=practice_headers)
    assert (seen, looped) == ([], READ_SQL)

    first, client.app.state.async_reads = client.app.state.async_reads, None  # type: ignore[attr-defined]
    try:
        with _statements() as seen, _on_the_loop() as looped:
            ordinary_answer = client.get(
                f"/fhir/{referral.service_request}", headers=practice_headers
            )
    finally:
        client.app.state.async_reads = first  # type: ignore[attr-defined]
    assert (seen, looped) == (READ_SQL, [])

    assert looped_answer.status_code == ordinary_answer.status_code == 200
    assert looped_answer.content == ordinary_answer.content
    assert looped_answer.headers["ETag"] == ordinary_answer.headers["ETag"]
    assert looped_answer.headers["Last-Modified"] == ordinary_answer.headers["Last-Modified"]
    on_loop, ordinary = _read_events(session_factory)[before:]
    assert on_loop == ordinary
    assert on_loop["patient_id"] == referral.patient.split("/")[1]
    assert on_loop["tenant_org_id"] is not None


def _search_events(session_factory: sessionmaker[Session]) -> list[dict[str, Any]]:
    with session_factory() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.kind == "search").order_by(AuditEvent.seq)
        ).all()
        return [{name: getattr(row, name) for name in _COMPARED} for row in rows]


OPEN_TASKS = "/fhir/Task?status=requested&_count=50"


def _forget_data_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's unwrapped data keys forgotten, as in a process that has opened nothing
    yet."""
    monkeypatch.setattr(ring, "_material", {})
    monkeypatch.setattr(ring, "_ciphers", {})


def test_the_open_tasks_page_on_the_loop_is_the_ordinary_paths_answer_and_event(
    client: TestClient,
    referral: Referral,
    practice: TestSystem,
    practice_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    """Two patients' Tasks: one merged event naming both, stored by the group commit."""
    second_referral = make_referral(
        client, practice_headers, practice.org_id, nhs_number=next(nhs_numbers()), referral_id="R-2"
    )
    before = len(_search_events(session_factory))
    with _statements() as seen, _on_the_loop() as on_loop_sql:
        looped_answer = client.get(OPEN_TASKS, headers=practice_headers)
    assert seen == []

    first, client.app.state.async_reads = client.app.state.async_reads, None  # type: ignore[attr-defined]
    try:
        with _statements() as ordinary_sql, _on_the_loop() as looped:
            ordinary_answer = client.get(OPEN_TASKS, headers=practice_headers)
    finally:
        client.app.state.async_reads = first  # type: ignore[attr-defined]
    assert looped == []
    # The page, then the merged event with its group rows: the same statements either way.
    assert on_loop_sql == ordinary_sql == [READ_SQL[0], "WITH e AS"]

    assert looped_answer.status_code == ordinary_answer.status_code == 200
    assert looped_answer.content == ordinary_answer.content
    tasks = {entry["resource"]["id"] for entry in looped_answer.json()["entry"]}
    assert tasks == {referral.task_id, second_referral.task_id}
    on_loop, ordinary = _search_events(session_factory)[before:]
    assert on_loop == ordinary
    assert on_loop["entity_groups"] is not None  # two patients, one event naming each
    assert set(on_loop["entities"].split()) >= {referral.task, second_referral.task}


def test_a_search_the_loop_cannot_answer_is_refused_or_answered_as_before(
    client: TestClient, referral: Referral, practice_headers: dict[str, str]
) -> None:
    """A bad parameter is refused on the loop as the thread refuses it; a page with `_include`,
    or a count, goes to the thread without a statement on the loop."""
    with _statements() as seen, _on_the_loop() as looped:
        refused = client.get("/fhir/Task?status=requested&_count=x", headers=practice_headers)
    assert refused.status_code == 400
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert looped == []
    for path in (f"{OPEN_TASKS}&_include=Task:focus", "/fhir/Task?status=requested&_count=0"):
        with _statements() as seen, _on_the_loop() as looped:
            answer = client.get(path, headers=practice_headers)
        assert answer.status_code == 200
        assert answer.json()["resourceType"] == "Bundle"
        assert looped == []
        assert seen[-1] == READ_SQL[1]


def test_an_open_tasks_page_whose_key_is_not_cached_is_answered_the_ordinary_way(
    client: TestClient,
    referral: Referral,
    practice_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _forget_data_keys(monkeypatch)
    with _statements() as seen, _on_the_loop() as looped:
        answer = client.get(OPEN_TASKS, headers=practice_headers)
    assert answer.status_code == 200
    assert [entry["resource"]["id"] for entry in answer.json()["entry"]] == [referral.task_id]
    assert looped == [READ_SQL[0]]  # tried, and found the key unknown to this process
    assert seen[-1] == READ_SQL[1]

    with _statements() as seen, _on_the_loop() as looped:
        again = client.get(OPEN_TASKS, headers=practice_headers)
    assert again.content == answer.content
    assert (seen, looped) == ([], READ_SQL)


def test_a_read_whose_key_is_not_cached_is_answered_the_ordinary_way_then_on_the_loop(
    client: TestClient,
    referral: Referral,
    practice_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _forget_data_keys(monkeypatch)
    with _statements() as seen, _on_the_loop() as looped:
        answer = client.get(f"/fhir/{referral.patient}", headers=practice_headers)
    assert answer.status_code == 200
    assert answer.json()["id"] == referral.patient.split("/")[1]
    assert looped == [READ_SQL[0]]  # tried, and found the key unknown to this process
    assert seen[0] == READ_SQL[0]
    assert seen[-1] == READ_SQL[1]
    assert any("data_key" in sql for sql in seen)  # the ordinary path fetched it

    with _statements() as seen, _on_the_loop() as looped:
        again = client.get(f"/fhir/{referral.patient}", headers=practice_headers)
    assert again.content == answer.content
    assert (seen, looped) == ([], READ_SQL)


def test_a_read_whose_pool_cannot_reach_the_database_is_answered_the_ordinary_way(
    client: TestClient,
    referral: Referral,
    practice_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    nowhere = make_engine("postgresql+psycopg://postgres@127.0.0.1:9/nowhere?connect_timeout=1")
    unreachable = client.portal.call(AsyncReads.open, nowhere)  # type: ignore[union-attr]
    assert unreachable is not None
    first, client.app.state.async_reads = client.app.state.async_reads, unreachable  # type: ignore[attr-defined]
    before = len(_read_events(session_factory))
    try:
        with caplog.at_level(logging.WARNING, "spis.db"), _statements() as seen:
            answer = client.get(f"/fhir/{referral.service_request}", headers=practice_headers)
    finally:
        client.app.state.async_reads = first  # type: ignore[attr-defined]
        client.portal.call(unreachable.close)  # type: ignore[union-attr]
        nowhere.dispose()
    assert answer.status_code == 200
    assert answer.json()["id"] == referral.service_request.split("/")[1]
    assert seen == READ_SQL
    assert len(_read_events(session_factory)) == before + 1
    assert [r.getMessage() for r in caplog.records if r.name == "spis.db"] == [
        "a read takes the ordinary path: PoolTimeout"
    ]


def test_a_pooled_connection_the_server_ended_is_replaced_unseen(
    client: TestClient, referral: Referral, practice_headers: dict[str, str], pg_url: str
) -> None:
    assert client.get(f"/fhir/{referral.patient}", headers=practice_headers).status_code == 200
    admin = make_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    database = pg_url.rsplit("/", 1)[1]
    try:
        with admin.connect() as conn:
            ended = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name AND datname = :db"
                ),
                {"name": AsyncReads.NAME, "db": database},
            ).all()
    finally:
        admin.dispose()
    assert ended  # the read above left its connection in the pool
    time.sleep(0.2)  # the terminated backend's goodbye reaches the pooled socket
    with _statements() as seen, _on_the_loop() as looped:
        answer = client.get(f"/fhir/{referral.patient}", headers=practice_headers)
    assert answer.status_code == 200
    assert (seen, looped) == ([], READ_SQL)
