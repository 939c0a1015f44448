"""Exchanges: double entry, derived balances, partners, and every refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.ledger import repository
from referral_service.ledger.models import Exchange, LedgerEntry
from tests.fixtures.systems import TestSystem
from tests.ledger.conftest import add_member, exchange, ledger_url


def statement(client: TestClient, headers: dict[str, str], tb: TestSystem, member: str) -> Any:
    response = client.get(ledger_url(tb, f"/members/{member}"), headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_an_exchange_credits_the_giver_and_debits_the_receiver(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")

    response = exchange(client, timebank_headers, timebank, sam, ana, minutes=90)

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["giver_id"], body["receiver_id"], body["minutes"]) == (sam, ana, 90)
    assert body["fhir"] == []  # neither was referred: nothing for a GP
    with session_factory() as session:
        rows = session.scalars(
            select(LedgerEntry).where(LedgerEntry.exchange_id == body["id"])
        ).all()
        assert sorted((r.member_id, r.minutes) for r in rows) == sorted([(sam, 90), (ana, -90)])
    assert statement(client, timebank_headers, timebank, sam)["balance_minutes"] == 90
    assert statement(client, timebank_headers, timebank, ana)["balance_minutes"] == -90


def test_balances_are_derived_from_every_exchange(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    sam, ana, bo = (add_member(client, timebank_headers, timebank, a) for a in ("S", "A", "B"))
    for giver, receiver, minutes in [(sam, ana, 60), (ana, sam, 30), (sam, bo, 45), (bo, ana, 15)]:
        response = exchange(client, timebank_headers, timebank, giver, receiver, minutes=minutes)
        assert response.status_code == 201, response.text

    accounts = {m: statement(client, timebank_headers, timebank, m) for m in (sam, ana, bo)}

    assert [accounts[sam][k] for k in ("given_minutes", "received_minutes")] == [105, 30]
    assert accounts[sam]["balance_minutes"] == 75
    assert accounts[ana]["balance_minutes"] == 30 - 75
    assert accounts[bo]["balance_minutes"] == 15 - 45
    assert (accounts[sam]["partners"], accounts[ana]["partners"], accounts[bo]["partners"]) == (
        2,
        2,
        2,
    )
    listed = client.get(ledger_url(timebank, "/members"), headers=timebank_headers).json()
    assert sum(m["balance_minutes"] for m in listed) == 0
    with session_factory() as session:
        per_exchange = session.execute(
            select(LedgerEntry.exchange_id, func.sum(LedgerEntry.minutes), func.count()).group_by(
                LedgerEntry.exchange_id
            )
        ).all()
        assert len(per_exchange) == 4
        assert all(total == 0 and count == 2 for _, total, count in per_exchange)
        assert repository.unbalanced(session, timebank.org_id) == []


def test_partners_are_distinct(
    client: TestClient, timebank: TestSystem, timebank_headers: dict[str, str]
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")
    for giver, receiver in [(sam, ana), (ana, sam), (sam, ana)]:
        assert exchange(client, timebank_headers, timebank, giver, receiver).status_code == 201

    assert statement(client, timebank_headers, timebank, sam)["partners"] == 1


def test_the_audit_check_finds_a_one_sided_exchange(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")
    made = exchange(client, timebank_headers, timebank, sam, ana).json()
    with session_factory() as session, session.begin():
        entry = session.scalars(
            select(LedgerEntry).where(LedgerEntry.exchange_id == made["id"])
        ).first()
        assert entry is not None
        session.delete(entry)  # something writing behind the service's back
    with session_factory() as session:
        assert repository.unbalanced(session, timebank.org_id) == [made["id"]]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"minutes": 0}, "minutes"),
        ({"minutes": -30}, "minutes"),
        ({"minutes": 24 * 60 + 1}, "minutes"),
        ({"date": "2999-01-01"}, "date"),
        ({"category": "astrology"}, "category"),
    ],
)
def test_bad_exchanges_are_refused(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    fields: dict[str, Any],
    field: str,
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")

    response = exchange(client, timebank_headers, timebank, sam, ana, **fields)

    assert response.status_code == 422, response.text
    assert response.json()["issue"][0]["expression"] == [field]
    assert_no_exchanges(session_factory)


def test_fractional_minutes_are_refused(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")

    for minutes in (1.5, 60.0, "60"):
        response = exchange(client, timebank_headers, timebank, sam, ana, minutes=minutes)
        assert response.status_code == 400, response.text
    assert_no_exchanges(session_factory)


def test_today_and_a_full_day_are_accepted(
    client: TestClient, timebank: TestSystem, timebank_headers: dict[str, str]
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")
    today = datetime.now(UTC).date().isoformat()

    response = exchange(client, timebank_headers, timebank, sam, ana, date=today, minutes=1440)

    assert response.status_code == 201, response.text
    too_late = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    assert exchange(client, timebank_headers, timebank, sam, ana, date=too_late).status_code == 422


def test_giver_and_receiver_must_differ(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")

    response = exchange(client, timebank_headers, timebank, sam, sam)

    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["giver_id", "receiver_id"]
    assert_no_exchanges(session_factory)


def test_unknown_and_other_time_banks_members_are_refused(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    other_timebank: TestSystem,
    other_timebank_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    kim = add_member(client, other_timebank_headers, other_timebank, "Kim")

    unknown = exchange(client, timebank_headers, timebank, sam, "no-such-member")
    foreign = exchange(client, timebank_headers, timebank, kim, sam)

    assert unknown.status_code == 404
    assert unknown.json()["issue"][0]["expression"] == ["receiver_id"]
    assert foreign.status_code == 404
    assert foreign.json()["issue"][0]["expression"] == ["giver_id"]
    assert_no_exchanges(session_factory)


def test_list_exchanges_newest_first_and_per_member(
    client: TestClient, timebank: TestSystem, timebank_headers: dict[str, str]
) -> None:
    sam, ana, bo = (add_member(client, timebank_headers, timebank, a) for a in ("S", "A", "B"))
    first = exchange(client, timebank_headers, timebank, sam, ana, date="2026-11-01").json()
    second = exchange(client, timebank_headers, timebank, ana, bo, date="2026-11-02").json()
    url = ledger_url(timebank, "/exchanges")

    everything = client.get(url, headers=timebank_headers).json()
    sams = client.get(url, params={"member_id": sam}, headers=timebank_headers).json()
    page = client.get(url, params={"limit": 1, "offset": 1}, headers=timebank_headers).json()

    assert [e["id"] for e in everything] == [second["id"], first["id"]]
    assert [e["id"] for e in sams] == [first["id"]]
    assert [e["id"] for e in page] == [first["id"]]
    assert client.get(url, params={"limit": 0}, headers=timebank_headers).status_code == 400


def assert_no_exchanges(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Exchange)) == 0
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 0
