"""The embedded default: the same chain on a migrated SQLite file (a smoke subset), sealed by the
same sealer under SQLite's write lock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import ANY

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit import repository, sealer
from referral_service.audit.models import Action, Kind, Outcome
from referral_service.audit.service import record, record_read
from referral_service.audit.verify import VerifyResult, verify
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.db import make_engine, make_sessionmaker
from referral_service.kit.clock import utcnow
from referral_service.migrate import alembic_config, upgrade
from referral_service.store.models import StoredResource
from tests.audit.conftest import a_principal, seal


@pytest.fixture
def sqlite_factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'var' / 'spis.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    engine.dispose()


def append(factory: sessionmaker[Session], name: str, count: int) -> None:
    for n in range(count):
        with factory.begin() as session:
            record(
                session,
                a_principal(name),
                kind=Kind.READ,
                action=Action.READ,
                entities=[f"Task/{name}-{n}"],
                patient_id="p1",
                tenant=name,
            )


def test_append_and_verify_on_sqlite(sqlite_factory: sessionmaker[Session]) -> None:
    """Chained as they commit: SQLite has one writer at a time anyway (pending.store)."""
    append(sqlite_factory, "a", 3)
    with sqlite_factory() as session:
        assert verify(session) == VerifyResult(True, 3)
    assert seal(sqlite_factory) == 0


def queue_one_by_hand(factory: sessionmaker[Session]) -> None:
    """An event inserted without SPIS's session hooks: the trigger queues it, nothing chains it."""
    with factory.begin() as session:
        session.execute(
            text(
                "INSERT INTO audit_event (id, recorded, action, kind, actor_client_id, "
                "actor_org_id, entities, outcome) VALUES ('by-hand', '2026-11-29 10:00:00.000000', "
                "'R', 'read', 'c', 'o', '', 0)"
            )
        )


@pytest.mark.parametrize(
    ("statement", "refusal"),
    [
        ("UPDATE audit_event SET detail = 'x'", "append-only"),
        ("DELETE FROM audit_event", "append-only"),
        ("UPDATE audit_chain SET hash = prev_hash", "append-only"),
        ("DELETE FROM audit_chain", "append-only"),
        ("DELETE FROM audit_unsealed", "only once chained"),
        ("UPDATE audit_unsealed SET event_seq = 9", "only once chained"),
    ],
)
def test_sqlite_triggers_refuse_update_and_delete(
    sqlite_factory: sessionmaker[Session], statement: str, refusal: str
) -> None:
    append(sqlite_factory, "a", 2)
    queue_one_by_hand(sqlite_factory)
    with sqlite_factory() as session:
        assert verify(session) == VerifyResult(True, 2, queued=1, oldest_queued=ANY)
    with sqlite_factory() as session, pytest.raises(DBAPIError, match=refusal):
        session.execute(text(statement))
    seal(sqlite_factory)
    with sqlite_factory() as session:
        assert verify(session) == VerifyResult(True, 3)


def test_an_edit_is_found_on_sqlite(sqlite_factory: sessionmaker[Session]) -> None:
    append(sqlite_factory, "a", 3)
    seal(sqlite_factory)
    with sqlite_factory.begin() as session:  # an attacker with the file drops the guard first
        session.execute(text("DROP TRIGGER audit_event_no_update"))
        session.execute(text("UPDATE audit_event SET outcome = 4 WHERE seq = 2"))
    with sqlite_factory() as session:
        result = verify(session)
    assert (result.ok, result.first_bad_seq) == (False, 2)


def test_concurrent_writers_on_sqlite_keep_one_chain(sqlite_factory: sessionmaker[Session]) -> None:
    engine = sqlite_factory.kw["bind"]
    threads = [
        threading.Thread(target=append, args=(sqlite_factory, f"w{i}", 15)) for i in range(3)
    ]
    running = sealer.Sealer(engine, interval_s=0.01, limit=4)  # turns between the writers
    running.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    running.stop()
    seal(sqlite_factory)
    with sqlite_factory() as session:
        assert verify(session) == VerifyResult(True, 45)


def refused_after_writing(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        session.execute(text("UPDATE audit_event SET seq = seq WHERE 0"))  # holds the write lock
        record(
            session,
            a_principal(),
            kind=Kind.CONSENT_DECISION,
            action=Action.EXECUTE,
            entities=[],
            outcome=Outcome.MINOR_FAILURE,
        )
        raise RuntimeError("refused")


def test_a_failure_outlives_the_rollback_on_sqlite(sqlite_factory: sessionmaker[Session]) -> None:
    """Written apart only after the rollback let go of the write lock, so nothing waits."""
    with pytest.raises(RuntimeError):
        refused_after_writing(sqlite_factory)
    seal(sqlite_factory)
    with sqlite_factory() as session:
        assert verify(session) == VerifyResult(True, 1)


def record_merged(factory: sessionmaker[Session], settings: Settings) -> None:
    """A search of three patients' Tasks: one merged event."""
    rows = [
        StoredResource(
            id=f"t{n}",
            type="Task",
            version_id=1,
            last_updated=utcnow(),
            org_id="org-a",
            body=b'{"for": {"reference": "Patient/p%d"}}' % n,
        )
        for n in range(3)
    ]
    with factory.begin() as session:
        record_read(Context(session, a_principal(), settings), rows, kind=Kind.SEARCH)


def test_a_merged_read_is_stored_found_and_verified_on_sqlite(
    sqlite_factory: sessionmaker[Session], settings: Settings
) -> None:
    record_merged(sqlite_factory, settings)
    with sqlite_factory() as session:
        assert verify(session) == VerifyResult(True, 1)
        [found] = repository.for_patient(session, "org-a", "p1", limit=10, offset=0)
        assert (found.event.patient_id, found.event.entities) == ("p1", ("Task/t1",))
        assert repository.get(session, "org-a", found.event.id) == found
    with sqlite_factory.begin() as session, pytest.raises(DBAPIError, match="append-only"):
        session.execute(text("UPDATE audit_event_group SET tenant_org_id = 'org-b'"))
    with sqlite_factory.begin() as session:
        session.execute(text("DROP TRIGGER audit_event_group_no_update"))
        session.execute(text("UPDATE audit_event_group SET patient_id = 'p9' WHERE grp = 1"))
    with sqlite_factory() as session:
        result = verify(session)
        assert not result.ok
        assert "group rows" in (result.reason or "")
        assert repository.for_patient(session, "org-a", "p9", limit=10, offset=0) == []


def test_migration_0023_goes_back_unless_a_merged_read_would_lose_its_groups(
    tmp_path: Path, settings: Settings
) -> None:
    url = f"sqlite:///{tmp_path / 'spis.sqlite3'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "20261201_0022")
    upgrade(url)  # the column and the table come back
    engine = make_engine(url)
    try:
        factory = make_sessionmaker(engine)
        append(factory, "a", 1)
        record_merged(factory, settings)
        with factory() as session:
            assert verify(session) == VerifyResult(True, 2)
        with pytest.raises(RuntimeError, match="would no longer verify"):
            command.downgrade(alembic_config(url), "20261201_0022")
        with factory() as session:
            assert verify(session) == VerifyResult(True, 2)
    finally:
        engine.dispose()
