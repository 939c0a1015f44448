"""`/fhir/AuditEvent` over HTTP: a practice reads the events about its own patients, nobody
else's; the reading is audited; a refused request is audited by the error handler; and no event
holds health data."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit import service as audit
from referral_service.audit.models import Action, AuditEvent, Kind
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.fhir.audit_failures import request_kind
from referral_service.principal import Principal
from referral_service.store import repository as store
from referral_service.store.models import StoredResource
from referral_service.store.service import Version
from tests.audit.conftest import audit_headers, principal_of
from tests.fixtures.referrals import Referral, make_referral
from tests.fixtures.systems import TestSystem


def stored(factory: sessionmaker[Session], ref: str) -> StoredResource:
    rtype, _, rid = ref.partition("/")
    with factory() as session:
        row = store.get(session, Principal.spis(), rtype, rid)
    assert row is not None
    return row


def read_as(
    factory: sessionmaker[Session], settings: Settings, who: TestSystem, refs: list[str]
) -> None:
    """What the read hook in fhir/endpoints.py will record."""
    rows = [stored(factory, ref) for ref in refs]
    with factory.begin() as session:
        audit.record_read(Context(session, principal_of(who), settings), rows)


def events(client: TestClient, headers: dict[str, str], patient: str, **params: Any) -> Any:
    response = client.get(
        "/fhir/AuditEvent", params={"patient": patient, **params}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_practice_reads_who_saw_its_patient(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    timebank: TestSystem,
    referral: Referral,
) -> None:
    read_as(session_factory, settings, practice, [referral.service_request])
    read_as(session_factory, settings, timebank, [referral.patient, referral.task])
    bundle = events(client, audit_headers(settings, practice), referral.patient)
    Bundle.model_validate(bundle)
    # making the referral was audited too (consent decision, transaction, search): keep the reads
    resources = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"].get("subtype", [{}])[0].get("code") == "read"
    ]
    assert len(resources) == 2
    newest, oldest = resources
    assert newest["agent"][0]["who"]["reference"] == f"Organization/{timebank.org_id}"
    assert newest["agent"][0]["who"]["identifier"]["value"] == timebank.client_id
    assert {e["what"]["reference"] for e in newest["entity"]} == {referral.patient, referral.task}
    assert oldest["agent"][0]["who"]["reference"] == f"Organization/{practice.org_id}"
    assert all(r["subtype"][0]["code"] == "read" for r in resources)


def test_only_the_callers_events_and_a_bare_id_works(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_b: TestSystem,
    practice_headers: dict[str, str],
    practice_b_headers: dict[str, str],
    referral: Referral,
) -> None:
    theirs = make_referral(client, practice_b_headers, practice_b.org_id, referral_id="B-1")
    read_as(session_factory, settings, practice, [referral.service_request])
    read_as(session_factory, settings, practice_b, [theirs.service_request])
    bare_id = referral.patient.partition("/")[2]
    bundle = events(client, audit_headers(settings, practice), bare_id)
    reads = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"].get("subtype", [{}])[0].get("code") == "read"
    ]
    assert [r["entity"][1]["what"]["reference"] for r in reads] == [referral.service_request]


def test_another_practices_patient_is_404(
    client: TestClient,
    settings: Settings,
    practice_b: TestSystem,
    referral: Referral,
) -> None:
    response = client.get(
        "/fhir/AuditEvent",
        params={"patient": referral.patient},
        headers=audit_headers(settings, practice_b),
    )
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_only_a_practice_with_the_scope_may_search(
    client: TestClient,
    settings: Settings,
    practice: TestSystem,
    timebank: TestSystem,
    referral: Referral,
) -> None:
    params = {"patient": referral.patient}
    other_scopes = audit_headers(settings, practice, scope="system/Patient.rs system/Task.rs")
    without_scope = client.get("/fhir/AuditEvent", params=params, headers=other_scopes)
    assert without_scope.status_code == 403
    as_timebank = client.get(
        "/fhir/AuditEvent", params=params, headers=audit_headers(settings, timebank)
    )
    assert as_timebank.status_code == 403
    missing = client.get("/fhir/AuditEvent", headers=audit_headers(settings, timebank))
    assert missing.status_code == 400


def test_reading_the_trail_is_audited_and_pages(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    referral: Referral,
) -> None:
    headers = audit_headers(settings, practice)
    events(client, headers, referral.patient)
    events(client, headers, referral.patient)
    first = events(client, headers, referral.patient, _count=1)
    assert len(first["entry"]) == 1
    assert "total" not in first
    [reading] = [e["resource"] for e in first["entry"]]
    assert reading["subtype"][0]["code"] == "search-type"
    assert reading["outcomeDesc"].startswith(
        "AuditEvent search: "
    )  # the previous read of the trail
    # Each page read adds an event; the next page still follows on from the first.
    [next_url] = [link["url"] for link in first["link"] if link["relation"] == "next"]
    second = client.get(next_url.removeprefix("http://testserver"), headers=headers).json()
    assert len(second["entry"]) == 1
    assert second["entry"][0]["resource"]["outcomeDesc"].startswith("AuditEvent search: ")
    assert second["entry"][0]["resource"]["id"] != reading["id"]
    unknown = client.get(
        "/fhir/AuditEvent",
        params={"patient": referral.patient, "_until": "not-an-event"},
        headers=headers,
    )
    assert unknown.status_code == 400


def test_an_event_is_read_by_id_by_its_tenant_only(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_b: TestSystem,
    referral: Referral,
) -> None:
    read_as(session_factory, settings, practice, [referral.task])
    bundle = events(client, audit_headers(settings, practice), referral.patient)
    event_id = bundle["entry"][0]["resource"]["id"]
    mine = client.get(f"/fhir/AuditEvent/{event_id}", headers=audit_headers(settings, practice))
    assert mine.status_code == 200
    assert mine.json()["id"] == event_id
    theirs = client.get(f"/fhir/AuditEvent/{event_id}", headers=audit_headers(settings, practice_b))
    assert theirs.status_code == 404


def test_a_refused_request_is_audited_an_anonymous_one_is_not(
    client: TestClient,
    session_factory: sessionmaker[Session],
    practice_b: TestSystem,
    practice_b_headers: dict[str, str],
    referral: Referral,
) -> None:
    before = all_events(session_factory)
    assert client.get(f"/fhir/{referral.service_request}").status_code == 401
    assert (
        client.get(f"/fhir/{referral.service_request}", headers=practice_b_headers).status_code
        == 404
    )
    [refused] = all_events(session_factory)[len(before) :]
    assert (refused.actor_org_id, refused.kind, refused.action) == (practice_b.org_id, "read", "R")
    assert (refused.entities, refused.outcome, refused.detail) == (
        referral.service_request,
        4,
        "404 not-found",
    )


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/fhir", (Kind.TRANSACTION, Action.EXECUTE, [])),
        ("GET", "/fhir/metadata", None),
        ("GET", "/ledger/members", None),
        ("GET", "/fhirish/Task", None),
        ("GET", "/fhir/Questionnaire/swemwbs", None),
        ("GET", "/fhir/Task", (Kind.SEARCH, Action.EXECUTE, [])),
        ("POST", "/fhir/Task/_search", (Kind.SEARCH, Action.EXECUTE, [])),
        ("POST", "/fhir/Task", (Kind.CREATE, Action.CREATE, [])),
        ("GET", "/fhir/Task/t1", (Kind.READ, Action.READ, ["Task/t1"])),
        ("PUT", "/fhir/Task/t1", (Kind.UPDATE, Action.UPDATE, ["Task/t1"])),
        ("PATCH", "/fhir/Task/t1", (Kind.PATCH, Action.UPDATE, ["Task/t1"])),
        ("GET", "/fhir/Task/t1/_history", (Kind.HISTORY, Action.READ, ["Task/t1"])),
        ("GET", "/fhir/Task/t1/_history/2", (Kind.VREAD, Action.READ, ["Task/t1"])),
    ],
)
def test_request_kind(method: str, path: str, expected: object) -> None:
    assert request_kind(method, path) == expected


def test_no_health_data_in_any_event(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    timebank: TestSystem,
    referral: Referral,
) -> None:
    """Everything the hooks will record about a referral: ids and codes, nothing from the body."""
    refs = [referral.patient, referral.consent, referral.service_request, referral.task]
    rows = [stored(session_factory, ref) for ref in refs]
    with session_factory.begin() as session:
        ctx = Context(session, principal_of(practice), settings)
        audit.record_read(ctx, rows, kind=Kind.SEARCH)
        audit.record_write(ctx, Kind.TRANSACTION, [Version.of(row) for row in rows])
        patient_id = referral.patient.partition("/")[2]
        audit.record_consent_decision(
            ctx,
            permitted=True,
            flow="referral",
            patient_id=patient_id,
            consents=[referral.consent],
            reason="permitted",
        )
        audit.record_share(
            ctx,
            [referral.service_request, referral.patient],
            recipient_org_id=timebank.org_id,
            tenant=practice.org_id,
            patient_id=patient_id,
        )
        audit.record_token_issued(
            session,
            client_id=practice.client_id,
            org_id=practice.org_id,
            org_kind=practice.kind,
            scope="system/Task.rs",
        )
    events(client, audit_headers(settings, practice), referral.patient)
    with session_factory() as session:
        dump = " ".join(
            str(value)
            for row in session.execute(text("SELECT * FROM audit_event"))
            for value in row
        )
    patient_json = client.get(
        f"/fhir/{referral.patient}", headers=audit_headers(settings, practice, "system/Patient.r")
    ).json()
    secrets = [
        "9434765919",
        patient_json["name"][0]["family"],
        patient_json["name"][0]["given"][0],
        patient_json["birthDate"],
        patient_json["address"][0]["postalCode"],
    ]
    assert all(secret not in dump for secret in secrets)
    assert len(all_events(session_factory)) >= 6


def all_events(factory: sessionmaker[Session]) -> list[AuditEvent]:
    with factory() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def test_a_referrals_write_event_names_the_task_spis_added_for_it(
    client: TestClient, settings: Settings, practice: TestSystem, referral: Referral
) -> None:
    """The Bundle held a Patient, Consent and ServiceRequest; SPIS added the referral Task. The
    practice's trail shows one transaction event that created all four."""
    bundle = events(client, audit_headers(settings, practice), referral.patient)
    writes = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"].get("subtype", [{}])[0].get("code") == "transaction"
    ]
    assert len(writes) == 1
    assert writes[0]["action"] == "C"
    assert [e["what"]["reference"] for e in writes[0]["entity"]] == [
        referral.patient,
        referral.consent,
        referral.service_request,
        referral.task,
    ]
