"""Group commit of the async reads' audit events (audit/grouped.py): events handed over while an
INSERT is in flight go in together, in the order they came, each caller answered only once its
event is committed; a failed INSERT stores none of its events and each caller gets the error."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit import chain
from referral_service.audit.grouped import GroupCommit
from referral_service.audit.models import AuditEvent, AuditEventGroup
from referral_service.db import AsyncReads
from referral_service.kit.clock import utcnow
from referral_service.kit.ids import new_id
from tests.store.test_store_reads import _on_the_loop


def _event(n: int) -> chain.Event:
    return chain.Event(
        id=new_id(),
        recorded=utcnow(),
        action="R",
        kind="read",
        actor_client_id="client",
        actor_org_id="org",
        tenant_org_id="org",
        patient_id=f"patient-{n}",
        entities=(f"Patient/patient-{n}",),
        purpose="TREAT",
        outcome=0,
        detail=None,
    )


def _stored(session_factory: sessionmaker[Session]) -> list[str | None]:
    with session_factory() as session:
        return list(session.scalars(select(AuditEvent.patient_id).order_by(AuditEvent.seq)))


def _run(engine: Engine, events: list[chain.Event]) -> list[Any]:
    async def go() -> list[Any]:
        reads = await AsyncReads.open(engine)
        assert reads is not None
        try:
            group = GroupCommit(reads.connection)
            await group.store(_event(0))  # alone: its own INSERT
            return await asyncio.gather(
                *(group.store(event) for event in events), return_exceptions=True
            )
        finally:
            await reads.close()

    return asyncio.run(go())


def test_events_handed_over_together_are_one_insert_in_their_order(
    pg_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with _on_the_loop() as looped:
        answers = _run(pg_engine, [_event(n) for n in range(1, 6)])
    assert answers == [None] * 5
    assert looped == ["INSERT INTO audit_event", "INSERT INTO audit_event"]
    assert _stored(session_factory) == [f"patient-{n}" for n in range(6)]


def test_a_caller_that_stops_waiting_leaves_the_others_events_stored(
    pg_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    cancelled = 1

    async def go() -> None:
        reads = await AsyncReads.open(pg_engine)
        assert reads is not None
        try:
            group = GroupCommit(reads.connection)
            waiting = [asyncio.create_task(group.store(_event(n))) for n in range(3)]
            await asyncio.sleep(0)  # all three handed over, the INSERT under way
            waiting[cancelled].cancel()
            done = await asyncio.gather(*waiting, return_exceptions=True)
            assert isinstance(done[cancelled], asyncio.CancelledError)
            await asyncio.sleep(0.5)  # the INSERT it no longer waits for ends
        finally:
            await reads.close()

    asyncio.run(go())
    assert _stored(session_factory) == ["patient-0", "patient-1", "patient-2"]


def _merged(n: int) -> chain.Event:
    """A search page's event naming two patients' Tasks (audit/service.py `_group_events`)."""
    groups = [chain.Group("org", f"patient-{n}", 1), chain.Group("org", f"patient-{n}b", 1)]
    return replace(
        _event(n),
        action="E",
        kind="search",
        tenant_org_id=None,
        patient_id=None,
        entities=(f"Task/task-{n}", f"Task/task-{n}b"),
        entity_groups=chain.groups_column(groups),
    )


def _groups(session_factory: sessionmaker[Session]) -> list[str | None]:
    with session_factory() as session:
        return list(
            session.scalars(
                select(AuditEventGroup.patient_id).order_by(
                    AuditEventGroup.event_seq, AuditEventGroup.grp
                )
            )
        )


def test_search_pages_and_reads_handed_over_together_commit_in_one_transaction(
    pg_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """The reads' events in one INSERT, the merged events with their group rows in another: all
    of them committed together."""
    with _on_the_loop() as looped:
        answers = _run(pg_engine, [_event(1), _merged(2), _event(3), _merged(4)])
    assert answers == [None] * 4
    assert looped == ["INSERT INTO audit_event", "INSERT INTO audit_event", "WITH e AS"]
    assert _stored(session_factory) == ["patient-0", "patient-1", "patient-3", None, None]
    assert _groups(session_factory) == ["patient-2", "patient-2b", "patient-4", "patient-4b"]


@pytest.mark.parametrize("failing", [_event, _merged], ids=["a read's", "a search page's"])
def test_a_failed_event_stores_none_of_the_events_committed_with_it_and_each_caller_gets_the_error(
    pg_engine: Engine, session_factory: sessionmaker[Session], failing: Callable[[int], chain.Event]
) -> None:
    events = [_event(1), replace(failing(2), kind="k" * 40), _event(3)]  # kind is 32 at most
    answers = _run(pg_engine, events)
    assert all(isinstance(answer, psycopg.DataError) for answer in answers)
    assert _stored(session_factory) == ["patient-0"]
    assert _groups(session_factory) == []
