"""A request's events go to PostgreSQL in one INSERT, and a sealer's turn is one INSERT of chain
rows and one DELETE of queue rows, whatever the number of events; the chain is the same, and the
queue still cannot be emptied of an event not chained."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit import chain, repository, sealer
from referral_service.audit.models import Action, AuditChainLink, Kind, Outcome
from referral_service.audit.service import record
from referral_service.audit.verify import VerifyResult, verify
from tests.audit.conftest import Tamper, a_principal, seal


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    sent: list[str] = []

    def note(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        sent.append(" ".join(sql.split()))

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", note)


def engine_of(factory: sessionmaker[Session]) -> Engine:
    engine = factory.kw["bind"]
    assert isinstance(engine, Engine)
    return engine


def record_mixed(factory: sessionmaker[Session], count: int) -> list[chain.Event]:
    """`count` events in one transaction, with NULLs in some columns, none in `purpose`."""
    recorded = []
    with factory.begin() as session:
        for n in range(count):
            recorded.append(
                record(
                    session,
                    a_principal(),
                    kind=Kind.SEARCH if n % 2 else Kind.READ,
                    action=Action.READ,
                    entities=[f"Patient/p-{n}", f"Task/t-{n}"] if n % 3 else [],
                    patient_id=f"p-{n}" if n % 2 else None,
                    tenant="org-a" if n % 2 else None,
                    outcome=Outcome.MINOR_FAILURE if n == 3 else Outcome.SUCCESS,
                    detail="refused" if n == 3 else None,
                )
            )
    return recorded


def test_many_events_are_one_insert_and_read_back_as_recorded(
    session_factory: sessionmaker[Session],
) -> None:
    with statements(engine_of(session_factory)) as sent:
        recorded = record_mixed(session_factory, 50)
    inserts = [sql for sql in sent if sql.startswith("INSERT INTO audit_event")]
    assert len(inserts) == 1, inserts
    with session_factory() as session:
        stored = [repository.get(session, e.tenant_org_id or "", e.id) for e in recorded]
        back = [
            r.event for r in repository.for_patient(session, "org-a", "p-1", limit=10, offset=0)
        ]
    # Events without a tenant are not readable by `get` with a tenant: check those by seq order.
    assert [s.event for s in stored if s is not None] == [
        e for e in recorded if e.tenant_org_id is not None
    ]
    assert back == [recorded[1]]
    seqs = [s.seq for s in stored if s is not None]
    assert seqs == sorted(seqs)  # seq is the order the events were recorded in


def test_one_event_is_still_one_insert(session_factory: sessionmaker[Session]) -> None:
    with statements(engine_of(session_factory)) as sent:
        record_mixed(session_factory, 1)
    assert len([sql for sql in sent if sql.startswith("INSERT INTO audit_event")]) == 1


def test_a_turn_is_one_insert_of_links_and_one_dequeue_and_the_chain_verifies(
    session_factory: sessionmaker[Session],
) -> None:
    recorded = record_mixed(session_factory, 40)
    with statements(engine_of(session_factory)) as sent:
        assert seal(session_factory) == 40
    assert len([sql for sql in sent if sql.startswith("INSERT INTO audit_chain")]) == 1
    assert len([sql for sql in sent if sql.startswith("DELETE FROM audit_unsealed")]) == 1
    with session_factory() as session:
        assert verify(session) == VerifyResult(True, 40)
        links = session.execute(
            select(AuditChainLink.pos, AuditChainLink.prev_hash, AuditChainLink.hash).order_by(
                AuditChainLink.pos
            )
        ).all()
    # The hash form is unchanged: recomputed from the events as recorded, in recording order.
    prev = chain.GENESIS
    for (pos, prev_hash, digest), event_ in zip(links, recorded, strict=True):
        assert (prev_hash, digest) == (prev, chain.link_hash(prev, pos, event_))
        prev = digest
    with session_factory() as session:
        assert session.scalar(text("SELECT count(*) FROM audit_unsealed")) == 0


def test_a_turn_chains_after_what_is_there(session_factory: sessionmaker[Session]) -> None:
    record_mixed(session_factory, 5)
    seal(session_factory)
    record_mixed(session_factory, 7)
    engine = engine_of(session_factory)
    assert sealer.seal_once(engine, limit=3) == 3
    assert sealer.seal_all(engine) == 4
    with session_factory() as session:
        assert verify(session) == VerifyResult(True, 12)


def test_one_delete_of_chained_and_unchained_queue_rows_is_refused_whole(
    session_factory: sessionmaker[Session], tamper: Tamper
) -> None:
    """The guard checks the statement's rows together: one unchained row among chained ones
    refuses the whole DELETE, and every row stays."""
    record_mixed(session_factory, 3)
    seal(session_factory)
    record_mixed(session_factory, 1)  # seq 4, queued
    tamper("INSERT INTO audit_unsealed (event_seq) VALUES (1), (2)")  # chained, put back
    with (
        session_factory() as session,
        pytest.raises(DBAPIError, match="only once chained") as refused,
    ):
        session.execute(text("DELETE FROM audit_unsealed"))
    assert getattr(refused.value.orig, "sqlstate", None) == "42501"
    with session_factory() as session:
        left = session.scalars(text("SELECT event_seq FROM audit_unsealed ORDER BY 1")).all()
    assert left == [1, 2, 4]
    with session_factory.begin() as session:  # chained ones alone may go
        session.execute(text("DELETE FROM audit_unsealed WHERE event_seq IN (1, 2)"))
    assert seal(session_factory) == 1
    with session_factory() as session:
        assert verify(session) == VerifyResult(True, 4)


def test_a_queue_row_cannot_be_changed(session_factory: sessionmaker[Session]) -> None:
    record_mixed(session_factory, 2)
    seal(session_factory)
    record_mixed(session_factory, 1)
    with session_factory() as session, pytest.raises(DBAPIError, match="only once chained"):
        session.execute(text("UPDATE audit_unsealed SET event_seq = 1"))
