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
from tests.fixtures.referrals import Referral
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


def test_a_read_whose_key_is_not_cached_is_answered_the_ordinary_way_then_on_the_loop(
    client: TestClient,
    referral: Referral,
    practice_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ring, "_material", {})
    monkeypatch.setattr(ring, "_ciphers", {})  # as in a process that has opened nothing yet
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
