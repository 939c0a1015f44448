"""An exchange's description: optional free text, sealed at rest like listing descriptions, shown
in lists and on the statement; one that does not open fails alone, not the list."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit.models import AuditEvent
from referral_service.keys import service as keys
from tests.fixtures.systems import TestSystem
from tests.ledger.conftest import add_member, exchange, ledger_url, reverse


def test_a_description_is_kept_sealed_and_shown_back(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")

    made = exchange(
        client, timebank_headers, timebank, sam, ana, description="Lifts to\tthe  market"
    )
    plain = exchange(client, timebank_headers, timebank, ana, sam, description="   ")

    assert made.status_code == 201, made.text
    assert made.json()["description"] == "Lifts to the market"
    assert plain.json()["description"] is None  # blank is no description
    listed = client.get(ledger_url(timebank, "/exchanges"), headers=timebank_headers).json()
    assert {row["id"]: row["description"] for row in listed} == {
        made.json()["id"]: "Lifts to the market",
        plain.json()["id"]: None,
    }
    with session_factory() as session:
        raw = session.execute(
            text("SELECT description FROM ledger_exchange WHERE id = :id"),
            {"id": made.json()["id"]},
        ).scalar_one()
        assert b"market" not in bytes(raw)
        empty = session.execute(
            text("SELECT description FROM ledger_exchange WHERE id = :id"),
            {"id": plain.json()["id"]},
        ).scalar_one()
        assert empty is None
        # Key status counts sealed values, and a NULL is not one.
        status = keys.status(session)
        assert sum(status.rows_by_key.values()) == 3  # two aliases and one description


def test_description_rules(
    client: TestClient, timebank: TestSystem, timebank_headers: dict[str, str]
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")

    for bad in ("x" * 281, "bell\x07"):
        response = exchange(client, timebank_headers, timebank, sam, ana, description=bad)
        assert response.status_code == 422, response.text
        assert response.json()["issue"][0]["expression"] == ["description"]
    assert client.get(ledger_url(timebank, "/exchanges"), headers=timebank_headers).json() == []


def test_an_exchange_whose_description_does_not_open_is_left_out_alone(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")
    good = exchange(client, timebank_headers, timebank, sam, ana, description="Gardening")
    bad = exchange(client, timebank_headers, timebank, ana, sam, minutes=45, description="Tea")
    bad_id = bad.json()["id"]
    with session_factory() as session, session.begin():  # moved from another row: does not open
        session.execute(
            text(
                "UPDATE ledger_exchange SET description = (SELECT description FROM "
                "ledger_exchange WHERE id = :other) WHERE id = :id"
            ),
            {"id": bad_id, "other": good.json()["id"]},
        )

    listed = client.get(ledger_url(timebank, "/exchanges"), headers=timebank_headers)
    statement = client.get(ledger_url(timebank, f"/members/{sam}"), headers=timebank_headers)
    download = client.get(ledger_url(timebank, "/exchanges.csv"), headers=timebank_headers)

    assert listed.status_code == 200, listed.text
    assert [row["id"] for row in listed.json()] == [good.json()["id"]]
    assert listed.headers["SPIS-Left-Out"] == f"LedgerExchange/{bad_id}"
    assert statement.status_code == 200, statement.text
    body = statement.json()
    assert [line["exchange_id"] for line in body["lines"]] == [good.json()["id"]]
    assert statement.headers["SPIS-Left-Out"] == f"LedgerExchange/{bad_id}"
    assert body["balance_minutes"] == 60 - 45  # the figures still count it
    assert download.status_code == 200
    assert bad_id not in download.text
    assert good.json()["id"] in download.text
    with session_factory() as session:
        failures = session.scalars(
            select(AuditEvent).where(AuditEvent.entities == f"LedgerExchange/{bad_id}")
        ).all()
    assert len(failures) == 3  # the list, the statement, the download
    assert all(event.outcome == 8 for event in failures)


def test_the_statement_lists_every_exchange_with_a_running_balance(
    client: TestClient, timebank: TestSystem, timebank_headers: dict[str, str]
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")
    bo = add_member(client, timebank_headers, timebank, "Bo")
    first = exchange(
        client, timebank_headers, timebank, sam, ana, minutes=60, date="2026-11-01"
    ).json()
    second = exchange(
        client,
        timebank_headers,
        timebank,
        bo,
        sam,
        minutes=20,
        date="2026-11-03",
        category="music",
        description="Piano lesson",
    ).json()
    wrong = exchange(
        client, timebank_headers, timebank, sam, bo, minutes=30, date="2026-11-02"
    ).json()
    reversal = reverse(client, timebank_headers, timebank, wrong["id"], "Never happened").json()

    body = client.get(ledger_url(timebank, f"/members/{sam}"), headers=timebank_headers).json()

    lines = [
        (
            line["exchange_id"],
            line["date"],
            line["partner_alias"],
            line["minutes"],
            line["balance_minutes"],
        )
        for line in body["lines"]
    ]
    assert lines == [
        (first["id"], "2026-11-01", "Ana", 60, 60),
        (wrong["id"], "2026-11-02", "Bo", 30, 90),
        (reversal["id"], "2026-11-02", "Bo", -30, 60),  # dated as the exchange it undoes
        (second["id"], "2026-11-03", "Bo", -20, 40),
    ]
    by_id = {line["exchange_id"]: line for line in body["lines"]}
    assert by_id[wrong["id"]]["reversed_by"] == reversal["id"]
    assert (by_id[reversal["id"]]["reverses"], by_id[reversal["id"]]["reason"]) == (
        wrong["id"],
        "Never happened",
    )
    assert (by_id[second["id"]]["description"], by_id[second["id"]]["category"]) == (
        "Piano lesson",
        "music",
    )
    assert body["balance_minutes"] == 40
    assert (body["given_minutes"], body["received_minutes"], body["partners"]) == (60, 20, 2)


def test_key_rotation_reseals_descriptions_and_reasons_and_skips_what_is_empty(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")
    described = exchange(client, timebank_headers, timebank, sam, ana, description="Tea").json()
    wrong = exchange(client, timebank_headers, timebank, ana, sam).json()  # no description
    reverse(client, timebank_headers, timebank, wrong["id"], "Wrong way round")
    client.post(
        ledger_url(timebank, f"/members/{ana}/end"),
        json={"reason": "Left"},
        headers=timebank_headers,
    )
    with session_factory() as session, session.begin():
        sealed_before = sum(keys.status(session).rows_by_key.values())
        new_key = keys.rotate(session)
    assert sealed_before == 5  # two aliases, a description, a reason, an end reason

    with session_factory() as session, session.begin():
        # Re-sealing a member's alias re-seals their end reason in the same UPDATE: 4 rows.
        assert keys.reencrypt_batch(session, batch_size=100) == 4
    with session_factory() as session, session.begin():
        assert keys.reencrypt_batch(session, batch_size=100) == 0
        assert keys.finish(session) == 0
        assert keys.status(session).rows_by_key == {new_key: 5}

    listed = client.get(ledger_url(timebank, "/exchanges"), headers=timebank_headers).json()
    assert {row["id"]: (row["description"], row["reason"]) for row in listed} == {
        described["id"]: ("Tea", None),
        wrong["id"]: (None, None),
        next(r["id"] for r in listed if r["reverses"]): (None, "Wrong way round"),
    }
    member = client.get(ledger_url(timebank, f"/members/{ana}"), headers=timebank_headers).json()
    assert member["end_reason"] == "Left"
