"""One stored row that does not open (tampered, truncated, under an unknown key) fails alone:
searches answer the rest with an OperationOutcome entry naming it, a read of it is a bare 500,
and both are logged with ids only and audited (issue 7 item 14)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit.models import AuditEvent
from tests.fixtures.referrals import Referral, make_referral
from tests.fixtures.systems import TestSystem
from tests.ledger.conftest import add_member, ledger_url

INTEGRITY = "Stored data failed its integrity check; it was not returned"


def integrity(answer: httpx.Response) -> str:
    """The diagnostics of a 500: the message and the correlation id the log carries too."""
    return f"{INTEGRITY}. Correlation id: {answer.headers['X-Correlation-ID']}"


Spoil = Callable[[Session, str, str], None]


def _copy_other_body(session: Session, table: str, row_id: str) -> None:
    """A value moved from another row: its associated data no longer matches."""
    column = "alias" if table == "ledger_member" else "body"
    session.execute(
        text(
            f"UPDATE {table} SET {column} = "
            f"(SELECT {column} FROM {table} WHERE id <> :id LIMIT 1) WHERE id = :id"
        ),
        {"id": row_id},
    )


def _truncate(session: Session, table: str, row_id: str) -> None:
    column = "alias" if table == "ledger_member" else "body"
    session.execute(
        text(f"UPDATE {table} SET {column} = substring({column} from 1 for 7) WHERE id = :id"),
        {"id": row_id},
    )


def _unknown_key(session: Session, table: str, row_id: str) -> None:
    column = "alias" if table == "ledger_member" else "body"
    session.execute(
        text(
            f"UPDATE {table} SET {column} = "
            f"overlay({column} placing '\\x7fffffff'::bytea from 2 for 4) WHERE id = :id"
        ),
        {"id": row_id},
    )


SPOILERS = [
    pytest.param(_copy_other_body, id="moved"),
    pytest.param(_truncate, id="truncated"),
    pytest.param(_unknown_key, id="unknown-key"),
]


@pytest.fixture
def two_referrals(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> tuple[Referral, Referral]:
    first = make_referral(client, practice_headers, practice.org_id)
    second = make_referral(
        client, practice_headers, practice.org_id, nhs_number="4010232137", referral_id="REF-2"
    )
    return first, second


def _spoil(session_factory: sessionmaker[Session], spoil: Spoil, table: str, row_id: str) -> None:
    with session_factory.begin() as session:
        spoil(session, table, row_id)


def _failures(session_factory: sessionmaker[Session], entity: str) -> list[AuditEvent]:
    with session_factory() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.outcome == 8)).all()
        return [row for row in rows if entity in row.entities.split()]


@pytest.mark.parametrize("spoil", SPOILERS)
def test_one_unreadable_patient_fails_alone_in_a_search(
    client: TestClient,
    session_factory: sessionmaker[Session],
    practice: TestSystem,
    practice_headers: dict[str, str],
    two_referrals: tuple[Referral, Referral],
    spoil: Spoil,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good, bad = (r.patient for r in two_referrals)
    _spoil(session_factory, spoil, "resource", bad.split("/")[1])

    with caplog.at_level(logging.ERROR, logger="spis.store"):
        response = client.get("/fhir/Patient", headers=practice_headers)

    assert response.status_code == 200, response.text
    bundle = response.json()
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    assert [e["resource"]["id"] for e in matches] == [good.split("/")[1]]
    assert matches[0]["resource"]["name"][0]["family"] == "Okafor"
    [outcome] = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert outcome["resource"]["resourceType"] == "OperationOutcome"
    assert outcome["resource"]["issue"] == [
        {
            "severity": "error",
            "code": "exception",
            "diagnostics": f"{bad} failed its integrity check and was left out of this page",
        }
    ]
    assert "total" not in bundle  # a total would count what the caller cannot see
    [event] = _failures(session_factory, bad)
    assert (event.kind, event.action, event.tenant_org_id) == ("search", "E", practice.org_id)
    assert event.patient_id == bad.split("/")[1]
    assert event.detail == "left out: stored data failed its integrity check"
    [record] = [r for r in caplog.records if r.getMessage() == "stored value did not open"]
    assert record.__dict__["row"] == bad
    assert "Okafor" not in caplog.text
    assert "9434765919" not in caplog.text


def test_includes_and_other_types_still_answer(
    client: TestClient,
    session_factory: sessionmaker[Session],
    practice_headers: dict[str, str],
    two_referrals: tuple[Referral, Referral],
) -> None:
    """An unreadable Patient reached through `_include` is reported the same way, and searches
    of other types do not notice it."""
    first, second = two_referrals
    _spoil(session_factory, _copy_other_body, "resource", second.patient.split("/")[1])

    response = client.get(
        "/fhir/ServiceRequest?_include=ServiceRequest:subject", headers=practice_headers
    )

    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert sorted(e["resource"]["id"] for e in entries if e["search"]["mode"] == "match") == sorted(
        r.service_request.split("/")[1] for r in two_referrals
    )
    included = [e["resource"]["id"] for e in entries if e["search"]["mode"] == "include"]
    assert included == [first.patient.split("/")[1]]
    [outcome] = [e for e in entries if e["search"]["mode"] == "outcome"]
    assert second.patient in outcome["resource"]["issue"][0]["diagnostics"]
    tasks = client.get("/fhir/Task", headers=practice_headers)
    assert tasks.status_code == 200
    assert len(tasks.json()["entry"]) == 2


@pytest.mark.parametrize("spoil", SPOILERS)
def test_reading_the_unreadable_row_is_a_bare_500_logged_and_audited(
    client: TestClient,
    session_factory: sessionmaker[Session],
    practice_headers: dict[str, str],
    two_referrals: tuple[Referral, Referral],
    spoil: Spoil,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good, bad = (r.patient for r in two_referrals)
    _spoil(session_factory, spoil, "resource", bad.split("/")[1])

    with caplog.at_level(logging.ERROR, logger="spis"):
        response = client.get(f"/fhir/{bad}", headers=practice_headers)
        history = client.get(f"/fhir/{bad}/_history", headers=practice_headers)

    for answer in (response, history):
        assert answer.status_code == 500
        assert answer.headers["content-type"].startswith("application/fhir+json")
        assert answer.json() == {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "exception", "diagnostics": integrity(answer)}],
        }
    assert "Okafor" not in caplog.text
    assert {e.kind for e in _failures(session_factory, bad)} == {"read", "history"}
    assert client.get(f"/fhir/{good}", headers=practice_headers).status_code == 200


@pytest.mark.parametrize("spoil", SPOILERS)
def test_a_ledger_list_leaves_out_a_member_whose_alias_does_not_open(
    client: TestClient,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    spoil: Spoil,
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")
    _spoil(session_factory, spoil, "ledger_member", ana)

    response = client.get(ledger_url(timebank, "/members"), headers=timebank_headers)

    assert response.status_code == 200, response.text
    assert [(m["id"], m["alias"]) for m in response.json()] == [(sam, "Sam")]
    assert response.headers["SPIS-Left-Out"] == f"LedgerMember/{ana}"
    [event] = _failures(session_factory, f"LedgerMember/{ana}")
    assert (event.kind, event.tenant_org_id) == ("search", timebank.org_id)
    single = client.get(ledger_url(timebank, f"/members/{ana}"), headers=timebank_headers)
    assert single.status_code == 500
    assert single.json()["issue"][0]["diagnostics"] == integrity(single)
    with session_factory() as session:
        last = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    assert last is not None
    assert (last.kind, last.outcome, last.detail) == ("read", 8, "500 exception")


def test_a_listing_whose_description_does_not_open_is_left_out(
    client: TestClient,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
    timebank_headers: dict[str, str],
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    offers = ledger_url(timebank, f"/members/{sam}/offers")
    ids = [
        client.post(
            offers, json={"category": "gardening", "description": d}, headers=timebank_headers
        ).json()["id"]
        for d in ("Roses", "Hedges")
    ]
    _spoil(session_factory, _truncate_description, "ledger_offer", ids[1])

    response = client.get(ledger_url(timebank, "/offers"), headers=timebank_headers)

    assert response.status_code == 200, response.text
    assert [o["description"] for o in response.json()] == ["Roses"]
    assert response.headers["SPIS-Left-Out"] == f"LedgerOffer/{ids[1]}"


def _truncate_description(session: Session, table: str, row_id: str) -> None:
    session.execute(
        text(
            "UPDATE ledger_offer SET description = substring(description from 1 for 7) WHERE id = :id"
        ),
        {"id": row_id},
    )
