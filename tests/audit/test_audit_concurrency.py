"""Appends from several connections at once (as from several API processes) keep one chain."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit import pending
from referral_service.audit.models import Action, AuditEvent, Kind
from referral_service.audit.repository import APPEND_LOCK_KEY
from referral_service.audit.service import record
from referral_service.audit.verify import VerifyResult, verify
from tests.audit.conftest import a_principal

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


def test_concurrent_appends_keep_one_unbroken_chain(
    session_factory: sessionmaker[Session],
) -> None:
    start = threading.Barrier(WRITERS)
    threads = [
        threading.Thread(target=_writer, args=(session_factory, f"w{i}", start))
        for i in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    total = WRITERS * TRANSACTIONS * EVENTS_PER_TRANSACTION
    with session_factory() as session:
        assert verify(session) == VerifyResult(True, total)
        seqs = session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)).all()
        writers = set(session.scalars(select(AuditEvent.actor_org_id)))
    assert seqs == list(range(1, total + 1))
    assert writers == {f"w{i}" for i in range(WRITERS)}


def test_one_transaction_s_events_are_contiguous(session_factory: sessionmaker[Session]) -> None:
    """The lock is held from the first append to the commit: nobody chains in between."""
    start = threading.Barrier(WRITERS)
    threads = [
        threading.Thread(target=_writer, args=(session_factory, f"w{i}", start))
        for i in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    with session_factory() as session:
        entities = session.scalars(select(AuditEvent.entities).order_by(AuditEvent.seq)).all()
    pairs = [entities[i : i + 2] for i in range(0, len(entities), 2)]
    assert all(a.rsplit("-", 1)[0] == b.rsplit("-", 1)[0] for a, b in pairs)


def test_the_append_lock_is_held_until_commit(
    session_factory: sessionmaker[Session], pg_engine: Engine
) -> None:
    try_lock = select(func.pg_try_advisory_xact_lock(APPEND_LOCK_KEY))
    with session_factory.begin() as session:
        record(session, a_principal(), kind=Kind.READ, action=Action.READ, entities=[])
        pending.write_now(session)
        with pg_engine.connect() as other:
            assert other.scalar(try_lock) is False
    with pg_engine.connect() as other:
        assert other.scalar(try_lock) is True
