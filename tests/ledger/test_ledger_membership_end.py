"""Ending a membership: the member stays listed with their history and balance, takes part in
nothing new, and ends once."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit.models import AuditEvent
from referral_service.ledger.models import Exchange, Offer, Request
from tests.fixtures.systems import TestSystem
from tests.ledger.conftest import add_member, end_membership, exchange, ledger_url, reverse


def test_an_ended_member_keeps_their_history_and_balance(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")
    made = exchange(client, timebank_headers, timebank, sam, ana, minutes=75).json()

    response = end_membership(client, timebank_headers, timebank, sam, "Moved to Leeds")

    assert response.status_code == 200, response.text
    ended = response.json()
    assert (ended["id"], ended["ended"], ended["end_reason"]) == (sam, True, "Moved to Leeds")
    assert ended["ended_at"].endswith("Z")
    listed = client.get(ledger_url(timebank, "/members"), headers=timebank_headers).json()
    assert [(m["id"], m["ended"], m["balance_minutes"]) for m in listed] == [
        (sam, True, 75),
        (ana, False, -75),
    ]
    statement = client.get(ledger_url(timebank, f"/members/{sam}"), headers=timebank_headers)
    body = statement.json()
    assert (body["ended"], body["balance_minutes"], body["given_minutes"]) == (True, 75, 75)
    assert [line["exchange_id"] for line in body["lines"]] == [made["id"]]
    with session_factory() as session:
        raw = session.execute(
            text("SELECT end_reason FROM ledger_member WHERE id = :id"), {"id": sam}
        ).scalar_one()
        assert b"Leeds" not in bytes(raw)  # sealed at rest, like the alias
        [event] = session.scalars(
            select(AuditEvent).where(AuditEvent.detail == "ledger membership ended")
        ).all()
    assert (event.kind, event.action, event.entities) == ("update", "U", f"LedgerMember/{sam}")
    assert event.tenant_org_id == timebank.org_id


def test_nothing_new_may_involve_an_ended_member(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")
    assert end_membership(client, timebank_headers, timebank, sam).status_code == 200
    listing = {"category": "music", "description": "Guitar"}

    as_giver = exchange(client, timebank_headers, timebank, sam, ana)
    as_receiver = exchange(client, timebank_headers, timebank, ana, sam)
    offer = client.post(
        ledger_url(timebank, f"/members/{sam}/offers"), json=listing, headers=timebank_headers
    )
    request = client.post(
        ledger_url(timebank, f"/members/{sam}/requests"), json=listing, headers=timebank_headers
    )

    for answer, field in (
        (as_giver, "giver_id"),
        (as_receiver, "receiver_id"),
        (offer, "member"),
        (request, "member"),
    ):
        assert answer.status_code == 409, answer.text
        issue = answer.json()["issue"][0]
        assert (issue["code"], issue["expression"]) == ("business-rule", [field])
        assert issue["diagnostics"] == f"Member {sam}'s membership has ended"
    with session_factory() as session:
        for model in (Exchange, Offer, Request):
            assert session.scalar(select(func.count()).select_from(model)) == 0


def test_a_membership_ends_once(
    client: TestClient, timebank: TestSystem, timebank_headers: dict[str, str]
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    first = end_membership(client, timebank_headers, timebank, sam)

    again = end_membership(client, timebank_headers, timebank, sam, "Twice")

    assert first.status_code == 200, first.text
    assert first.json()["end_reason"] is None
    assert again.status_code == 409, again.text
    assert "already ended" in again.json()["issue"][0]["diagnostics"]
    found = client.get(ledger_url(timebank, f"/members/{sam}"), headers=timebank_headers).json()
    assert (found["ended_at"], found["end_reason"]) == (first.json()["ended_at"], None)


def test_ending_refuses_unknown_members_and_long_reasons(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    other_timebank: TestSystem,
    other_timebank_headers: dict[str, str],
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    kim = add_member(client, other_timebank_headers, other_timebank, "Kim")

    foreign = end_membership(client, timebank_headers, timebank, kim)
    too_long = end_membership(client, timebank_headers, timebank, sam, "x" * 281)

    assert foreign.status_code == 404
    assert too_long.status_code == 422
    assert too_long.json()["issue"][0]["expression"] == ["reason"]
    kims = client.get(
        ledger_url(other_timebank, f"/members/{kim}"), headers=other_timebank_headers
    ).json()
    assert kims["ended"] is False
    sams = client.get(ledger_url(timebank, f"/members/{sam}"), headers=timebank_headers).json()
    assert sams["ended"] is False


def test_a_mistake_can_still_be_reversed_after_the_membership_ended(
    client: TestClient, timebank: TestSystem, timebank_headers: dict[str, str]
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")
    wrong = exchange(client, timebank_headers, timebank, sam, ana).json()
    assert end_membership(client, timebank_headers, timebank, sam).status_code == 200

    response = reverse(client, timebank_headers, timebank, wrong["id"])

    assert response.status_code == 201, response.text
    found = client.get(ledger_url(timebank, f"/members/{sam}"), headers=timebank_headers).json()
    assert (found["balance_minutes"], found["ended"]) == (0, True)
