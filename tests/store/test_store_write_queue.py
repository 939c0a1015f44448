"""store/write_queue.py: rows queued by `service.create` behave as if the unit of work had
written them. A query in the same transaction sees them; what a savepoint or the transaction rolls
back is never written; a row read back by id comes from the identity map, with no query."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, inspect, select
from sqlalchemy.exc import DBAPIError, InvalidRequestError
from sqlalchemy.orm import Session, configure_mappers, sessionmaker

from referral_service.audit.sealer import SEALER_THREAD
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import register
from referral_service.principal import Principal
from referral_service.store import repository, service, write_queue
from referral_service.store.models import ResourceVersion, SearchIndex, StoredResource
from referral_service.store.repository import TokenMatch
from referral_service.store.write_queue import _table

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
                # An update queues the version it replaces: dropped with the savepoint too.
                row = service.load(ctx, "Patient", kept.id, for_update=True)
                service.update(ctx, row, {**_patient("unknown"), "id": kept.id})
                assert (_count(session, StoredResource), _count(session, ResourceVersion)) == (2, 1)
                raise RuntimeError("roll the savepoint back")
        except RuntimeError:
            pass
        other = service.create(ctx, "Patient", _patient("male"))
        row = service.load(ctx, "Patient", other.id, for_update=True)
        service.update(ctx, row, {**_patient("other"), "id": other.id})
    with session_factory() as session:
        assert _count(session, StoredResource) == 2
        superseded = session.execute(
            select(ResourceVersion.resource_id, ResourceVersion.version_id)
        )
        assert superseded.all() == [(other.id, 1)]
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


def _resource_row(rid: str, org: str, body: bytes) -> dict[str, Any]:
    when = datetime(2026, 11, 29, 15, 0, 1, 123456, tzinfo=UTC)
    return {
        "id": rid,
        "type": "Observation",
        "version_id": 1,
        "last_updated": when,
        "org_id": org,
        "body": body,
    }


def test_queued_rows_go_in_as_sent_values_nulls_and_bytes_alike(
    session_factory: sessionmaker[Session],
) -> None:
    """One INSERT per table (binary arrays on PostgreSQL): every value comes back as it went in,
    a body's every byte, an empty body, a column of nothing but NULLs."""
    with session_factory() as session, session.begin():
        org = register(session, OrgKind.PRACTICE, "Practice", "F84001").id
    bodies = [bytes(range(256)), b"", b"\x00\\x00'\"{}"]
    rows = [_resource_row(f"r-{i}", org, body) for i, body in enumerate(bodies)]
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    index = [
        {
            "resource_id": row["id"],
            "position": 0,
            "resource_type": "Observation",
            "name": "code",
            "system": None,
            "value": value,
            "start": None,
            "end": None,
        }
        for row, value in zip(rows, ["a,b", '{"x"}', None], strict=True)
    ]
    index[0] |= {"start": start, "end": start}
    with session_factory() as session, session.begin():
        connection = session.connection()
        write_queue.insert_rows(connection, _table(StoredResource), rows)
        write_queue.insert_rows(connection, _table(SearchIndex), index)
    with session_factory() as session:
        stored = session.execute(
            select(
                StoredResource.id,
                StoredResource.version_id,
                StoredResource.last_updated,
                StoredResource.org_id,
                StoredResource.body,
            ).order_by(StoredResource.id)
        ).all()
        assert [tuple(r) for r in stored] == [
            (r["id"], 1, r["last_updated"], org, r["body"]) for r in rows
        ]
        found = session.execute(
            select(
                SearchIndex.resource_id,
                SearchIndex.system,
                SearchIndex.value,
                SearchIndex.start,
                SearchIndex.end,
            ).order_by(SearchIndex.resource_id)
        ).all()
        assert [tuple(r) for r in found] == [
            ("r-0", None, "a,b", start, start),
            ("r-1", None, '{"x"}', None, None),
            ("r-2", None, None, None, None),
        ]


def test_a_value_too_long_for_its_column_is_refused_not_cut(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session, session.begin():
        org = register(session, OrgKind.PRACTICE, "Practice", "F84001").id
    with session_factory() as session, session.begin():
        connection = session.connection()
        with pytest.raises(DBAPIError):
            write_queue.insert_rows(
                connection, _table(StoredResource), [_resource_row("x" * 65, org, b"{}")]
            )


def test_a_long_token_system_is_indexed_cut_to_its_column(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory() as session, session.begin():
        org = register(session, OrgKind.PRACTICE, "Practice", "F84001").id
    principal = Principal("client", org, OrgKind.PRACTICE, frozenset())
    system = "https://example.org/" + "s" * 300
    patient = {**PATIENT, "identifier": [*PATIENT["identifier"], {"system": system, "value": "7"}]}
    with session_factory() as session, session.begin():
        made = service.create(Context(session, principal, settings), "Patient", patient)
    with session_factory() as session:
        systems = session.scalars(
            select(SearchIndex.system).where(
                SearchIndex.resource_id == made.id, SearchIndex.value == "7"
            )
        ).all()
        assert systems == [system[:255]]


def _new_row(rid: str) -> StoredResource:
    when = datetime(2026, 11, 29, 15, 0, 1, 123456, tzinfo=UTC)
    return repository.new_row(rid, "Observation", 1, when, "org-x", b"{}")


def test_a_held_row_is_persistent_in_the_session_and_its_id_taken(
    session_factory: sessionmaker[Session],
) -> None:
    """`hold` attaches a new row as a query's load would: persistent, no pending change, found
    by id, gone with the savepoint it was held in; a second row of the same id is refused as
    `Session.add` refuses it."""
    configure_mappers()  # as the first query would
    with session_factory() as session:
        session.connection()  # begun, as by `insert_resource`
        savepoint = session.begin_nested()
        row = _new_row("held-1")
        write_queue.hold(session, row)
        state = inspect(row)
        assert (state.persistent, state.modified, state.identity) == (True, False, ("held-1",))
        assert row in session
        assert session.get(StoredResource, "held-1") is row
        assert (list(session.dirty), list(session.new)) == ([], [])
        with pytest.raises(InvalidRequestError):
            write_queue.hold(session, _new_row("held-1"))
        with pytest.raises(InvalidRequestError):  # not transient any more
            write_queue.hold(session, row)
        savepoint.rollback()
        assert row not in session
        assert session.get(StoredResource, "held-1") is None


def test_hold_still_runs_attach_events_and_resets_a_row_with_history(
    session_factory: sessionmaker[Session],
) -> None:
    """The long way (`make_transient_to_detached`, `Session.add`) where it does more: a
    listener sees the attach, a row built by its constructor has its history reset."""
    attached: list[object] = []

    def seen(_: Session, instance: object) -> None:
        attached.append(instance)

    with session_factory() as session:
        event.listen(session, "after_attach", seen)
        row = _new_row("held-2")
        write_queue.hold(session, row)
        assert attached == [row]
        event.remove(session, "after_attach", seen)
        built = StoredResource(id="held-3", type="Observation", version_id=1, org_id="org-x")
        write_queue.hold(session, built)
        assert (inspect(built).persistent, inspect(built).modified) == (True, False)
        assert session.get(StoredResource, "held-3") is built
        session.rollback()
