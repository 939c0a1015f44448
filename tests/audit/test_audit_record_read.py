"""record_read: an event per tenant and patient (IHE BALP), each naming its own resources, the
rest (actor, purpose, time, action) shared; stored as one event that names its groups."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit import chain
from referral_service.audit import service as audit
from referral_service.audit.models import Action, Kind
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.organisations.models import OrgKind
from referral_service.principal import Principal
from referral_service.store.models import StoredResource

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _row(rtype: str, rid: str, org: str, body: bytes) -> StoredResource:
    return StoredResource(id=rid, type=rtype, version_id=1, last_updated=NOW, org_id=org, body=body)


def _task(rid: str, org: str, patient: str) -> StoredResource:
    body = {"resourceType": "Task", "id": rid, "for": {"reference": f"Patient/{patient}"}}
    return _row("Task", rid, org, orjson.dumps(body))


def test_a_search_page_records_one_event_that_stands_for_one_per_tenant_and_patient(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    principal = Principal("client-a", "org-a", OrgKind.PRACTICE, frozenset())
    rows = [
        *(_task(f"t{i}", "org-a", "p1") for i in range(audit.MAX_ENTITIES + 20)),
        _task("u1", "org-a", "p2"),
        _task("v1", "org-b", "p2"),
        _row("Patient", "p3", "org-a", b"not parsed: a Patient is itself"),
        _row("Organization", "o1", "org-a", b'{"resourceType": "Organization"}'),
    ]
    with session_factory() as session:
        audit.record_read(Context(session, principal, settings), rows, kind=Kind.SEARCH)
        [stored] = [q.event for q in session.info["spis.audit.pending"]]
        session.rollback()
    assert (stored.tenant_org_id, stored.patient_id) == (None, None)
    parts = chain.parts(stored)
    by_group: dict[tuple[str | None, str | None], list[tuple[str, ...]]] = {}
    for event in parts:
        by_group.setdefault((event.tenant_org_id, event.patient_id), []).append(event.entities)
    assert by_group == {
        ("org-a", "p1"): [
            tuple(f"Task/t{i}" for i in range(audit.MAX_ENTITIES)),
            tuple(f"Task/t{i}" for i in range(audit.MAX_ENTITIES, audit.MAX_ENTITIES + 20)),
        ],
        ("org-a", "p2"): [("Task/u1",)],
        ("org-b", "p2"): [("Task/v1",)],
        ("org-a", "p3"): [("Patient/p3",)],
        ("org-a", None): [("Organization/o1",)],
    }
    assert [event.id for event in parts] == [f"{stored.id}-{n}" for n in range(6)]
    shared = {
        (e.recorded, e.action, e.kind, e.actor_client_id, e.actor_org_id, e.purpose, e.outcome)
        for e in parts
    }
    assert shared == {(stored.recorded, Action.EXECUTE.value, "search", "client-a", "org-a",
                       "TREAT", 0)}  # fmt: skip


def test_a_read_of_one_patient_is_stored_as_before(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    principal = Principal("client-a", "org-a", OrgKind.PRACTICE, frozenset())
    rows = [_task("t1", "org-a", "p1"), _task("t2", "org-a", "p1")]
    with session_factory() as session:
        audit.record_read(Context(session, principal, settings), rows, kind=Kind.SEARCH)
        [stored] = [q.event for q in session.info["spis.audit.pending"]]
        session.rollback()
    assert (stored.tenant_org_id, stored.patient_id, stored.entity_groups) == ("org-a", "p1", None)
    assert stored.entities == ("Task/t1", "Task/t2")
    assert chain.parts(stored) == [stored]


def test_a_search_that_found_nothing_is_still_recorded(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    principal = Principal("client-a", "org-a", OrgKind.PRACTICE, frozenset())
    with session_factory() as session:
        audit.record_read(Context(session, principal, settings), [], kind=Kind.SEARCH)
        [queued] = [q.event for q in session.info["spis.audit.pending"]]
        session.rollback()
    assert (queued.tenant_org_id, queued.patient_id, queued.entities) == (None, None, ())
    assert queued.action == Action.EXECUTE.value
