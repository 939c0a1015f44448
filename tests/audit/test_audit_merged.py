"""A read of several patients (a search page) is one stored event, one queue row and one chain
link, and is still shown as one BALP AuditEvent per tenant and patient: to that patient's
practice only, with that group's entities, by an id of its own. Its groups are hashed with it,
and `verify` catches an edit to them or to the group rows that find it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit import chain, repository
from referral_service.audit import service as audit
from referral_service.audit.models import (
    Action,
    AuditChainLink,
    AuditEvent,
    AuditEventGroup,
    Kind,
)
from referral_service.audit.verify import verify
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.kit.clock import utcnow
from referral_service.principal import Principal
from referral_service.store import repository as store
from referral_service.store.models import StoredResource
from tests.audit.conftest import Tamper, a_principal, audit_headers, principal_of, seal
from tests.fixtures.referrals import Referral, make_referral
from tests.fixtures.server import nhs_numbers
from tests.fixtures.systems import TestSystem

PATIENTS = 3


def referrals(client: TestClient, headers: dict[str, str], org_id: str) -> list[Referral]:
    numbers = nhs_numbers()
    return [
        make_referral(client, headers, org_id, nhs_number=next(numbers), referral_id=f"MERGED-{n}")
        for n in range(PATIENTS)
    ]


def search_events(factory: sessionmaker[Session]) -> list[AuditEvent]:
    with factory() as session:
        stmt = select(AuditEvent).where(AuditEvent.kind == "search").order_by(AuditEvent.seq)
        return list(session.scalars(stmt))


def audit_trail(
    client: TestClient, settings: Settings, who: TestSystem, patient: str
) -> list[dict[str, Any]]:
    response = client.get(
        "/fhir/AuditEvent",
        params={"patient": patient, "_count": 100},
        headers=audit_headers(settings, who),
    )
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", [])]


def test_a_search_page_of_several_patients_is_one_row_and_one_link_shown_per_patient(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_b: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    made = referrals(client, practice_headers, practice.org_id)
    before = len(search_events(session_factory))
    response = client.get("/fhir/Task?status=requested&_count=50", headers=practice_headers)
    assert response.status_code == 200, response.text
    assert len(response.json()["entry"]) == PATIENTS

    [page] = search_events(session_factory)[before:]
    assert (page.tenant_org_id, page.patient_id) == (None, None)
    assert page.entity_groups is not None
    assert len(chain.groups_of(page.entity_groups)) == PATIENTS
    seal(session_factory)
    with session_factory() as session:
        links = session.scalar(
            select(func.count())
            .select_from(AuditChainLink)
            .where(AuditChainLink.event_seq == page.seq)
        )
        assert links == 1
        assert verify(session).ok

    for referral in made:
        trail = audit_trail(client, settings, practice, referral.patient)
        [shown] = [r for r in trail if r["id"].startswith(f"{page.id}-")]
        assert shown["subtype"][0]["code"] == "search-type"
        assert {e["what"]["reference"] for e in shown["entity"]} == {
            referral.patient,
            referral.task,
        }
        assert shown["agent"][0]["who"]["reference"] == f"Organization/{practice.org_id}"
        read = client.get(
            f"/fhir/AuditEvent/{shown['id']}", headers=audit_headers(settings, practice)
        )
        assert read.status_code == 200, read.text
        assert read.json() == shown
        elsewhere = client.get(
            f"/fhir/AuditEvent/{shown['id']}", headers=audit_headers(settings, practice_b)
        )
        assert elsewhere.status_code == 404
    # The row's own id is no event a practice is shown.
    bare = client.get(f"/fhir/AuditEvent/{page.id}", headers=audit_headers(settings, practice))
    assert bare.status_code == 404


def stored(factory: sessionmaker[Session], ref: str) -> StoredResource:
    rtype, _, rid = ref.partition("/")
    with factory() as session:
        row = store.get(session, Principal.spis(), rtype, rid)
    assert row is not None
    return row


def test_each_tenant_sees_only_its_own_group_of_a_row(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_b: TestSystem,
    timebank: TestSystem,
    referral: Referral,
    practice_b_headers: dict[str, str],
) -> None:
    theirs = make_referral(client, practice_b_headers, practice_b.org_id, referral_id="B-1")
    refs = [referral.task, theirs.task, referral.service_request]
    rows = [stored(session_factory, ref) for ref in refs]
    with session_factory.begin() as session:
        audit.record_read(Context(session, principal_of(timebank), settings), rows)

    ours = [r for r in audit_trail(client, settings, practice, referral.patient)
            if r["agent"][0]["who"]["reference"] == f"Organization/{timebank.org_id}"]  # fmt: skip
    assert [{e["what"]["reference"] for e in r["entity"]} for r in ours] == [
        {referral.patient, referral.task, referral.service_request}
    ]
    other = [r for r in audit_trail(client, settings, practice_b, theirs.patient)
             if r["agent"][0]["who"]["reference"] == f"Organization/{timebank.org_id}"]  # fmt: skip
    assert [{e["what"]["reference"] for e in r["entity"]} for r in other] == [
        {theirs.patient, theirs.task}
    ]
    with session_factory() as session:
        # Another tenant asking for the same patient finds nothing, and cannot read the part.
        patient_id = referral.patient.partition("/")[2]
        found = repository.for_patient(session, practice_b.org_id, patient_id, limit=50, offset=0)
        assert found == []
        assert repository.get(session, practice_b.org_id, ours[0]["id"]) is None
        assert repository.get(session, practice.org_id, other[0]["id"]) is None


# --- verify -------------------------------------------------------------------------------------


def record_page(factory: sessionmaker[Session], settings: Settings) -> int:
    """A search of three patients' Tasks at two practices: one merged event; its seq."""
    principal = a_principal()
    rows = [
        StoredResource(
            id=f"t{n}",
            type="Task",
            version_id=1,
            last_updated=utcnow(),
            org_id="org-a" if n < 2 else "org-b",
            body=b'{"for": {"reference": "Patient/p%d"}}' % n,
        )
        for n in range(3)
    ]
    with factory.begin() as session:
        audit.record_read(Context(session, principal, settings), rows)
    with factory() as session:
        seq = session.scalar(select(AuditEvent.seq).where(AuditEvent.entity_groups.is_not(None)))
    assert seq is not None
    return seq


def test_a_merged_row_verifies_and_is_found_by_each_patient(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    seq = record_page(session_factory, settings)
    seal(session_factory)
    with session_factory() as session:
        assert verify(session).ok
        groups = session.execute(
            select(AuditEventGroup.grp, AuditEventGroup.tenant_org_id, AuditEventGroup.patient_id)
            .where(AuditEventGroup.event_seq == seq)
            .order_by(AuditEventGroup.grp)
        ).all()
        assert [tuple(g) for g in groups] == [
            (0, "org-a", "p0"),
            (1, "org-a", "p1"),
            (2, "org-b", "p2"),
        ]
        [found] = repository.for_patient(session, "org-b", "p2", limit=10, offset=0)
        assert (found.event.tenant_org_id, found.event.entities) == ("org-b", ("Task/t2",))
        assert repository.seq_of(session, "org-b", found.event.id) == seq  # `_until` paging
        assert repository.seq_of(session, "org-a", found.event.id) is None
        assert repository.for_patient(session, "org-a", "p2", limit=10, offset=0) == []


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        (
            "UPDATE audit_event SET entity_groups = "
            '\'[["org-a","p0",1],["org-b","p1",1],["org-b","p2",1]]\' WHERE seq = :seq',
            "hash does not match",
        ),
        ("UPDATE audit_event SET entity_groups = NULL WHERE seq = :seq", "hash does not match"),
        (
            "UPDATE audit_event_group SET tenant_org_id = 'org-b' WHERE event_seq = :seq AND grp = 1",
            "group rows of event seq",
        ),
        (
            "DELETE FROM audit_event_group WHERE event_seq = :seq AND grp = 2",
            "group rows of event seq",
        ),
        (
            "INSERT INTO audit_event_group (event_seq, grp, tenant_org_id, patient_id) "
            "VALUES (:seq, 3, 'org-c', 'p9')",
            "group rows of event seq",
        ),
        (
            "INSERT INTO audit_event_group (event_seq, grp, tenant_org_id, patient_id) "
            "SELECT seq, 0, 'org-c', 'p9' FROM audit_event WHERE seq <> :seq",
            "which is missing or has no groups",
        ),
    ],
)
def test_verify_catches_an_edit_to_the_groups_or_their_rows(
    session_factory: sessionmaker[Session],
    settings: Settings,
    tamper: Tamper,
    sql: str,
    reason: str,
) -> None:
    with session_factory.begin() as session:  # a single event beside it, stored as before
        audit.record(
            session,
            a_principal(),
            kind=Kind.READ,
            action=Action.READ,
            entities=["Task/t9"],
            patient_id="p9",
            tenant="org-a",
        )
    seq = record_page(session_factory, settings)
    seal(session_factory)
    with session_factory() as session:
        assert verify(session).ok
    tamper(sql, seq=seq)
    with session_factory() as session:
        result = verify(session)
    assert not result.ok
    assert reason in (result.reason or ""), result.reason


def test_verify_catches_a_group_row_of_no_event(
    session_factory: sessionmaker[Session], settings: Settings, tamper: Tamper
) -> None:
    seq = record_page(session_factory, settings)
    seal(session_factory)
    tamper(
        "INSERT INTO audit_event_group (event_seq, grp, tenant_org_id, patient_id) "
        "VALUES (:seq + 1000, 0, 'org-c', 'p9')",
        seq=seq,
    )
    with session_factory() as session:
        result = verify(session)
    assert not result.ok
    assert f"names event seq {seq + 1000}, which is missing" in (result.reason or "")


def test_the_group_rows_are_read_out_of_the_stored_groups_nulls_and_order_kept(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """On PostgreSQL the group rows come from the `entity_groups` text the event stored: a group
    with no patient is a NULL (not the text "null"), and each row's `grp` is its place in the
    list, a patient split over two groups (more entities than one group holds) included."""
    split = audit.MAX_ENTITIES + 1
    rows = [
        StoredResource(
            id=rid,
            type=rtype,
            version_id=1,
            last_updated=utcnow(),
            org_id="org-a",
            body=body,
        )
        for rid, rtype, body in [
            ("t0", "Task", b'{"for": {"reference": "Patient/p0"}}'),
            ("o1", "Organization", b"{}"),
            *((f"x{n}", "Task", b'{"for": {"reference": "Patient/p2"}}') for n in range(split)),
        ]
    ]
    with session_factory.begin() as session:
        audit.record_read(Context(session, a_principal(), settings), rows)
    with session_factory() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.entity_groups.is_not(None)))
        [stored_event] = event.all()
        assert stored_event.entity_groups is not None
        groups = session.execute(
            select(AuditEventGroup.grp, AuditEventGroup.tenant_org_id, AuditEventGroup.patient_id)
            .where(AuditEventGroup.event_seq == stored_event.seq)
            .order_by(AuditEventGroup.grp)
        ).all()
        hashed = chain.groups_of(stored_event.entity_groups)
        assert [tuple(g) for g in groups] == [
            (n, g.tenant_org_id, g.patient_id) for n, g in enumerate(hashed)
        ]
        assert [tuple(g) for g in groups] == [
            (0, "org-a", "p0"),
            (1, "org-a", None),
            (2, "org-a", "p2"),
            (3, "org-a", "p2"),
        ]
    seal(session_factory)
    with session_factory() as session:
        assert verify(session).ok
        found = repository.for_patient(session, "org-a", "p2", limit=10, offset=0)
        assert sorted(len(r.event.entities) for r in found) == [1, audit.MAX_ENTITIES]
