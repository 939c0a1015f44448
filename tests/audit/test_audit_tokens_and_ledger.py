"""Refused token requests and ledger writes are audited (issue 7 item 15): who, which ids, whose
patient; never the assertion, the alias or a description."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit.models import AuditEvent
from referral_service.config import Settings
from tests.audit.conftest import audit_headers
from tests.fixtures.systems import ASSERTION_TYPE, TestSystem
from tests.ledger.conftest import add_member, enrol, exchange, ledger_url, route

TOKEN_URL = "http://testserver/auth/token"


def events(session_factory: sessionmaker[Session]) -> list[AuditEvent]:
    with session_factory() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def token_request(client: TestClient, assertion: str, **extra: str) -> int:
    form = {
        "grant_type": "client_credentials",
        "scope": "system/Task.rs",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **extra,
    }
    return client.post("/auth/token", data=form).status_code


def test_a_refused_token_request_is_audited_with_the_claimed_client_and_the_error(
    client: TestClient, session_factory: sessionmaker[Session], practice: TestSystem
) -> None:
    expired = practice.assertion(TOKEN_URL, exp=int(time.time()) - 3600)

    assert token_request(client, expired) == 401
    assert token_request(client, "not-a-jwt") == 401
    assert client.post("/auth/token", json={"grant_type": "password"}).status_code == 400

    refused = [e for e in events(session_factory) if e.kind == "token"]
    assert [(e.actor_client_id, e.outcome, e.detail, e.action) for e in refused] == [
        (practice.client_id, 4, "invalid_client", "E"),
        ("unknown", 4, "invalid_client", "E"),
        ("unknown", 4, "invalid_request", "E"),
    ]
    assert all(e.actor_org_id == "unknown" and e.entities == "" for e in refused)
    assert expired not in " ".join(str(e.detail) for e in refused)


def test_a_refused_token_keeps_only_an_id_shaped_client_id(
    client: TestClient, session_factory: sessionmaker[Session], practice: TestSystem
) -> None:
    expired = practice.assertion(TOKEN_URL, exp=int(time.time()) - 3600)
    named = practice.assertion(TOKEN_URL, iss="Grace Okafor", sub="Grace Okafor")

    assert token_request(client, expired, client_id="7d1f-client") == 401
    assert token_request(client, expired, client_id="Grace Okafor") == 401
    assert token_request(client, named) == 401  # the claimed client is the assertion's `iss`

    refused = [e for e in events(session_factory) if e.kind == "token"]
    assert [(e.kind, e.action, e.outcome, e.actor_client_id, e.detail) for e in refused] == [
        ("token", "E", 4, "7d1f-client", "invalid_client"),
        ("token", "E", 4, "unknown", "invalid_client"),
        ("token", "E", 4, "unknown", "invalid_client"),
    ]
    stored = " ".join(
        str(getattr(e, column.key)) for e in refused for column in AuditEvent.__table__.columns
    )
    assert "Grace Okafor" not in stored
    for assertion in (expired, named):
        assert not any(part in stored for part in assertion.split("."))


def test_a_granted_token_is_still_audited_once(
    client: TestClient, session_factory: sessionmaker[Session], practice: TestSystem
) -> None:
    assert token_request(client, practice.assertion(TOKEN_URL)) == 200
    [issued] = [e for e in events(session_factory) if e.kind == "token"]
    assert (issued.actor_client_id, issued.outcome) == (practice.client_id, 0)


def test_members_listings_and_exchanges_are_audited_for_the_time_bank(
    client: TestClient,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
    timebank_headers: dict[str, str],
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam Alias")
    ana = add_member(client, timebank_headers, timebank, "Ana")
    offer = client.post(
        ledger_url(timebank, f"/members/{sam}/offers"),
        json={"category": "gardening", "description": "Roses and hedges"},
        headers=timebank_headers,
    ).json()["id"]
    swap = exchange(client, timebank_headers, timebank, sam, ana).json()["id"]

    written = [(e.kind, e.action, e.outcome, e.entities, e.detail) for e in events(session_factory)]
    assert written[-4:] == [
        ("create", "C", 0, f"LedgerMember/{sam}", "ledger member"),
        ("create", "C", 0, f"LedgerMember/{ana}", "ledger member"),
        ("create", "C", 0, f"LedgerOffer/{offer} LedgerMember/{sam}", "ledger offer"),
        (
            "create",
            "C",
            0,
            f"LedgerExchange/{swap} LedgerMember/{sam} LedgerMember/{ana}",
            "ledger exchange",
        ),
    ]
    for event in events(session_factory)[-4:]:
        assert (event.actor_org_id, event.tenant_org_id) == (timebank.org_id, timebank.org_id)
    text = repr([(e.detail, e.entities) for e in events(session_factory)])
    assert "Sam Alias" not in text
    assert "Roses" not in text


def test_a_refused_ledger_write_is_audited(
    client: TestClient,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
    timebank_headers: dict[str, str],
) -> None:
    sam = add_member(client, timebank_headers, timebank)
    assert exchange(client, timebank_headers, timebank, sam, sam).status_code == 422

    last = events(session_factory)[-1]
    assert (last.kind, last.action, last.outcome) == ("create", "C", 4)
    assert last.detail is not None
    assert last.detail.startswith("422")


def test_enrolment_and_a_referred_members_exchange_show_in_the_patients_trail(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    timebank: TestSystem,
    timebank_headers: dict[str, str],
) -> None:
    routed_referral = route(
        client, session_factory, settings, practice, practice_headers, timebank.org_id
    )
    enrolled = enrol(client, timebank_headers, timebank, routed_referral.child_task_id).json()
    grace, observation = enrolled["member"]["id"], enrolled["observation"]
    helper = add_member(client, timebank_headers, timebank, "Helper")
    swap = exchange(client, timebank_headers, timebank, grace, helper).json()

    patient_id = routed_referral.patient_id
    ours = [e for e in events(session_factory) if e.patient_id == patient_id and e.kind == "create"]
    assert [(e.tenant_org_id, e.actor_org_id, e.outcome) for e in ours] == [
        (practice.org_id, timebank.org_id, 0)
    ] * 2
    assert ours[0].entities.split() == [
        observation,
        f"Task/{routed_referral.child_task_id}",
        f"LedgerMember/{grace}",
    ]
    assert ours[0].detail == "ledger enrolment"
    assert ours[1].entities.split() == [*swap["fhir"], f"LedgerExchange/{swap['id']}"]
    assert ours[1].detail == "ledger exchange: given"

    # The practice reads them in its patient's audit trail.
    trail = client.get(
        f"/fhir/AuditEvent?patient=Patient/{patient_id}",
        headers=audit_headers(settings, practice),
    )
    assert trail.status_code == 200, trail.text
    described = {e["resource"].get("outcomeDesc") for e in trail.json()["entry"]}
    assert {"ledger enrolment", "ledger exchange: given"} <= described
