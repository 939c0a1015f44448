"""Recording from several connections at once (as from several API processes) takes no shared
lock; the sealer chains what committed, in order, one sealer at a time, into one chain.

(Before issue 12 every append took one advisory lock until commit, and one transaction's events
were contiguous in the chain. Neither holds now, on purpose: see docs/security.md.)"""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit import pending, sealer
from referral_service.audit.models import Action, AuditChainLink, AuditEvent, AuditUnsealed, Kind
from referral_service.audit.repository import SEALER_LOCK_KEY
from referral_service.audit.service import record
from referral_service.audit.verify import VerifyResult, verify
from tests.audit.conftest import a_principal, seal
from tests.fixtures.systems import TestSystem, bearer

WRITERS = 6
TRANSACTIONS = 20
EVENTS_PER_TRANSACTION = 2


def _writer(factory: sessionmaker[Session], name: str, start: threading.Barrier) -> None:
    start.wait()
    for n in range(TRANSACTIONS):
        with factory.begin() as session:
            # Some work first, so the transactions overlap rather than queue up at the start.
            session.execute(text("SELECT pg_sleep(0.001)"))
            for k in range(EVENTS_PER_TRANSACTION):
                record(
                    session,
                    a_principal(name),
                    kind=Kind.READ,
                    action=Action.READ,
                    entities=[f"Task/{name}-{n}-{k}"],
                )


def _sealer(engine: Engine, done: threading.Event) -> None:
    while not done.is_set():
        sealer.seal_once(engine, limit=7)  # small batches: many turns, overlapping the writers


def test_concurrent_writers_and_sealers_keep_one_unbroken_chain(
    session_factory: sessionmaker[Session], pg_engine: Engine
) -> None:
    start, done = threading.Barrier(WRITERS), threading.Event()
    writers = [
        threading.Thread(target=_writer, args=(session_factory, f"w{i}", start))
        for i in range(WRITERS)
    ]
    sealers = [threading.Thread(target=_sealer, args=(pg_engine, done)) for _ in range(3)]
    for thread in writers + sealers:
        thread.start()
    for thread in writers:
        thread.join(timeout=60)
    done.set()
    for thread in sealers:
        thread.join(timeout=60)
    seal(session_factory)
    total = WRITERS * TRANSACTIONS * EVENTS_PER_TRANSACTION
    with session_factory() as session:
        assert verify(session) == VerifyResult(True, total)
        seqs = session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)).all()
        chained = session.scalars(select(AuditChainLink.event_seq)).all()
        writers_seen = set(session.scalars(select(AuditEvent.actor_org_id)))
    assert seqs == list(range(1, total + 1))  # nothing rolled back: no gaps
    assert sorted(chained) == seqs
    assert writers_seen == {f"w{i}" for i in range(WRITERS)}


def _event(session: Session, name: str) -> None:
    record(session, a_principal(), kind=Kind.READ, action=Action.READ, entities=[f"Task/{name}"])


def test_an_open_transaction_with_events_blocks_no_other_commit(
    session_factory: sessionmaker[Session],
) -> None:
    """What capped the whole service: the second commit waited for the first to end."""
    with session_factory.begin() as first:
        _event(first, "first")
        pending.write_now(first)  # inserted, not committed
        with session_factory.begin() as second:
            second.execute(text("SET LOCAL lock_timeout = '1s'"))
            second.execute(text("SET LOCAL statement_timeout = '2s'"))
            _event(second, "second")
        # committed while `first` was still open
    seal(session_factory)
    with session_factory() as session:
        assert verify(session) == VerifyResult(True, 2)


def test_recording_does_not_wait_for_a_sealer(
    session_factory: sessionmaker[Session], pg_engine: Engine
) -> None:
    with pg_engine.connect() as sealing:
        assert sealing.scalar(select(func.pg_try_advisory_xact_lock(SEALER_LOCK_KEY))) is True
        with session_factory.begin() as session:
            session.execute(text("SET LOCAL lock_timeout = '1s'"))
            _event(session, "while a sealer holds its lock")
        assert sealer.seal_once(pg_engine) == 0  # a second sealer skips its turn
        sealing.rollback()
    assert seal(session_factory) == 1


def test_the_sealer_chains_committed_events_in_order_and_waits_for_open_ones(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        _event(session, "a")
    open_session = session_factory()
    open_session.begin()
    _event(open_session, "b")
    pending.write_now(open_session)  # seq 2, not committed
    with session_factory.begin() as session:
        _event(session, "c")
        _event(session, "d")
    try:
        assert seal(session_factory) == 3
        assert chained_entities(session_factory) == ["Task/a", "Task/c", "Task/d"]
        open_session.commit()
    finally:
        open_session.close()
    assert seal(session_factory) == 1
    assert chained_entities(session_factory) == ["Task/a", "Task/c", "Task/d", "Task/b"]
    with session_factory() as session:
        assert verify(session) == VerifyResult(True, 4)


def chained_entities(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        stmt = (
            select(AuditEvent.entities)
            .join(AuditChainLink, AuditChainLink.event_seq == AuditEvent.seq)
            .order_by(AuditChainLink.pos)
        )
        return list(session.scalars(stmt))


def test_rolled_back_events_are_never_sealed(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        _event(session, "rolled back")
        pending.write_now(session)  # inserted (and queued by the trigger), then rolled back
        session.rollback()
    with session_factory.begin() as session:
        _event(session, "kept")
    assert seal(session_factory) == 1
    assert chained_entities(session_factory) == ["Task/kept"]
    with session_factory() as session:
        assert session.scalar(select(AuditEvent.seq)) == 2  # a gap where the rollback was
        assert verify(session) == VerifyResult(True, 1)


def test_two_sealers_at_once_do_not_fork_the_chain(
    session_factory: sessionmaker[Session], pg_engine: Engine
) -> None:
    for n in range(10):
        with session_factory.begin() as session:
            _event(session, f"e{n}")
    with pg_engine.connect() as first, pg_engine.connect() as second:
        assert sealer.seal(first, limit=4) == 4  # holds the lock until it commits
        assert sealer.seal(second, limit=4) == 0
        first.commit()
        assert sealer.seal(second, limit=4, wait=True) == 4
        second.commit()
    assert seal(session_factory) == 2
    with session_factory() as session:
        assert verify(session) == VerifyResult(True, 10)


@pytest.mark.usefixtures("session_factory")
def test_a_running_app_seals_within_moments(
    client: TestClient, practice: TestSystem, pg_engine: Engine
) -> None:
    """The lifespan's sealer thread, with nobody calling it: events recorded by requests leave
    the queue on their own (the thread runs every 0.25 s; the wait allows for a busy machine)."""
    headers = bearer(client, practice)  # a token issued: audited
    assert client.get("/fhir/Patient", headers=headers).status_code == 200  # a search: audited
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with pg_engine.connect() as conn:
            queued = conn.scalar(select(func.count()).select_from(AuditUnsealed))
            chained = conn.scalar(select(func.count()).select_from(AuditChainLink))
        if queued == 0 and chained:
            break
        time.sleep(0.05)
    assert queued == 0
    assert chained is not None
    assert chained >= 2
