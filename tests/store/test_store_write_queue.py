"""store/write_queue.py: rows queued by `service.create` behave as if the unit of work had
written them. A query in the same transaction sees them; what a savepoint or the transaction rolls
back is never written; a row read back by id comes from the identity map, with no query."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit.sealer import SEALER_THREAD
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import register
from referral_service.principal import Principal
from referral_service.store import repository, service
from referral_service.store.models import ResourceVersion, SearchIndex, StoredResource
from referral_service.store.repository import TokenMatch

PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}],
    "gender": "female",
}


def _patient(gender: str) -> dict[str, Any]:
    return {**PATIENT, "gender": gender}


def _count(session: Session, model: type[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_queued_rows_are_seen_by_the_next_query_and_dropped_with_a_savepoint(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory() as session, session.begin():
        org = register(session, OrgKind.PRACTICE, "Practice", "F84001").id
    principal = Principal("client", org, OrgKind.PRACTICE, frozenset())
    with session_factory() as session, session.begin():
        ctx = Context(session, principal, settings)
        kept = service.create(ctx, "Patient", _patient("female"))
        query = [[TokenMatch("gender", "female")]]
        found = repository.search(session, principal, "Patient", query, limit=5, offset=0)
        assert [row.id for row in found] == [kept.id]
        try:
            with session.begin_nested():
                service.create(ctx, "Patient", _patient("male"))
                assert _count(session, StoredResource) == 2
                raise RuntimeError("roll the savepoint back")
        except RuntimeError:
            pass
        service.create(ctx, "Patient", _patient("other"))
    with session_factory() as session:
        assert _count(session, StoredResource) == 2
        assert _count(session, ResourceVersion) == 2
        genders = session.scalars(select(SearchIndex.value).where(SearchIndex.name == "gender"))
        assert sorted(str(g) for g in genders) == ["female", "other"]


def test_a_rolled_back_transaction_writes_nothing_and_a_new_row_reads_back_without_a_query(
    session_factory: sessionmaker[Session], settings: Settings, pg_engine: Engine
) -> None:
    with session_factory() as session, session.begin():
        org = register(session, OrgKind.PRACTICE, "Practice", "F84001").id
    principal = Principal("client", org, OrgKind.PRACTICE, frozenset())
    statements: list[str] = []

    def seen(*args: Any) -> None:
        if threading.current_thread().name != SEALER_THREAD:  # an app's audit sealer
            statements.append(str(args[2]))

    with session_factory() as session:
        ctx = Context(session, principal, settings)
        made = service.create(ctx, "Patient", _patient("female"))
        event.listen(pg_engine, "before_cursor_execute", seen)
        try:
            row = session.get(StoredResource, made.id)
        finally:
            event.remove(pg_engine, "before_cursor_execute", seen)
        assert row is not None
        assert row.body == made.body  # the plaintext, not the sealed value
        assert statements == []
        session.rollback()
        assert session.get(StoredResource, made.id) is None
        assert _count(session, StoredResource) == 0
