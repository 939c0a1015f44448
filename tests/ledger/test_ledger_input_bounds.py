"""Issue 7 items 19 and 32 for the ledger's JSON API, on PostgreSQL and on the SQLite default:
timestamps always carry their zone, dates and text are bounded, a repeated key is refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from referral_service.app import create_app
from referral_service.config import Settings
from referral_service.db import make_engine, make_sessionmaker
from referral_service.migrate import upgrade
from referral_service.organisations.models import OrgKind
from tests.fixtures.systems import TestSystem, bearer, register_system
from tests.ledger.conftest import add_member, exchange, ledger_url

UTC_INSTANT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def sqlite_timebank(tmp_path: Path) -> Iterator[tuple[TestClient, TestSystem, dict[str, str]]]:
    settings = Settings(
        environment="test", var_dir=tmp_path / "var", public_base_url="http://testserver"
    )
    assert settings.database_url.startswith("sqlite:///")
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    timebank = register_system(make_sessionmaker(engine), OrgKind.TIMEBANK, name="SQLite TB")
    with TestClient(create_app(settings)) as client:
        yield client, timebank, bearer(client, timebank)
    engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def ledger(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[TestClient, TestSystem, dict[str, str]]:
    if request.param == "sqlite":
        found: tuple[TestClient, TestSystem, dict[str, str]] = request.getfixturevalue(
            "sqlite_timebank"
        )
        return found
    client: TestClient = request.getfixturevalue("client")
    timebank: TestSystem = request.getfixturevalue("timebank")
    return client, timebank, request.getfixturevalue("timebank_headers")


def test_every_timestamp_is_utc_with_z(
    ledger: tuple[TestClient, TestSystem, dict[str, str]],
) -> None:
    client, timebank, headers = ledger
    sam, kim = add_member(client, headers, timebank), add_member(client, headers, timebank, "Kim")
    listing = client.post(
        ledger_url(timebank, f"/members/{sam}/offers"),
        json={"category": "gardening", "description": "Weeding"},
        headers=headers,
    ).json()
    recorded = exchange(client, headers, timebank, sam, kim).json()
    member = client.get(ledger_url(timebank, f"/members/{sam}"), headers=headers).json()
    listed = client.get(ledger_url(timebank, "/members"), headers=headers).json()

    stamps = [listing["created_at"], recorded["created_at"], member["joined_at"]]
    stamps += [m["joined_at"] for m in listed]
    assert all(UTC_INSTANT.match(stamp) for stamp in stamps), stamps


@pytest.mark.parametrize("day", ["0001-01-01", "1979-12-31"])
def test_an_exchange_dated_before_1980_is_refused(
    ledger: tuple[TestClient, TestSystem, dict[str, str]], day: str
) -> None:
    client, timebank, headers = ledger
    sam, kim = add_member(client, headers, timebank), add_member(client, headers, timebank, "Kim")

    response = exchange(client, headers, timebank, sam, kim, date=day)

    assert response.status_code == 422, response.text
    [issue] = response.json()["issue"]
    assert (issue["expression"], issue["diagnostics"]) == (
        ["date"],
        "date must not be before 1980-01-01",
    )
    assert client.get(ledger_url(timebank, "/exchanges"), headers=headers).json() == []
    assert exchange(client, headers, timebank, sam, kim, date="1980-01-01").status_code == 201


@pytest.mark.parametrize("alias", ["Sam\x00", "\x07Sam", "S\x1bam", "Sam\ud800"])
def test_an_alias_with_a_control_character_is_refused(
    ledger: tuple[TestClient, TestSystem, dict[str, str]], alias: str
) -> None:
    client, timebank, headers = ledger
    escaped = alias.encode("unicode_escape").decode().replace("\\x", "\\u00")
    body = f'{{"alias": "{escaped}"}}'

    response = client.post(
        ledger_url(timebank, "/members"), content=body, headers={**headers, **JSON}
    )

    assert response.status_code == 422, response.text
    [issue] = response.json()["issue"]
    assert issue["expression"] == ["alias"]
    assert issue["diagnostics"] == "alias must not contain control characters"
    assert client.get(ledger_url(timebank, "/members"), headers=headers).json() == []


def test_line_breaks_in_a_description_are_folded_not_refused(
    ledger: tuple[TestClient, TestSystem, dict[str, str]],
) -> None:
    client, timebank, headers = ledger
    sam = add_member(client, headers, timebank)

    response = client.post(
        ledger_url(timebank, f"/members/{sam}/offers"),
        json={"category": "gardening", "description": "Weeding,\r\n\tpruning"},
        headers=headers,
    )

    assert response.status_code == 201, response.text
    assert response.json()["description"] == "Weeding, pruning"


def test_a_description_with_nul_is_refused(
    ledger: tuple[TestClient, TestSystem, dict[str, str]],
) -> None:
    client, timebank, headers = ledger
    sam = add_member(client, headers, timebank)

    response = client.post(
        ledger_url(timebank, f"/members/{sam}/requests"),
        json={"category": "gardening", "description": "Help\x00"},
        headers=headers,
    )

    assert response.status_code == 422, response.text
    assert response.json()["issue"][0]["expression"] == ["description"]


def test_a_body_with_a_repeated_key_is_400_and_records_nothing(
    ledger: tuple[TestClient, TestSystem, dict[str, str]],
) -> None:
    client, timebank, headers = ledger
    sam, kim = add_member(client, headers, timebank), add_member(client, headers, timebank, "Kim")
    body = (
        f'{{"giver_id": "{sam}", "receiver_id": "{kim}", "minutes": 30, "minutes": 600, '
        '"date": "2026-11-20", "category": "befriending"}'
    )

    response = client.post(
        ledger_url(timebank, "/exchanges"), content=body, headers={**headers, **JSON}
    )

    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    [issue] = response.json()["issue"]
    assert issue["code"] == "structure"
    assert (
        issue["diagnostics"] == 'The request body has a JSON object with "minutes" more than once'
    )
    assert client.get(ledger_url(timebank, "/exchanges"), headers=headers).json() == []


def test_ids_with_control_characters_are_not_found_not_a_server_error(
    ledger: tuple[TestClient, TestSystem, dict[str, str]],
) -> None:
    client, timebank, headers = ledger
    sam = add_member(client, headers, timebank)

    answers = [
        exchange(client, headers, timebank, sam, "x\x00y"),
        client.get(ledger_url(timebank, "/members/x%01y"), headers=headers),
        client.get(ledger_url(timebank, "/exchanges?member_id=x%01"), headers=headers),
        client.post(
            ledger_url(timebank, "/enrolments"),
            json={"child_task_id": "t\x00", "alias": "Grace"},
            headers=headers,
        ),
    ]

    assert [a.status_code for a in answers] == [404] * 4, [a.text for a in answers]
    assert all(a.json()["issue"][0]["code"] == "not-found" for a in answers)
    assert client.get(ledger_url(timebank, "/exchanges"), headers=headers).json() == []


def test_reversals_endings_figures_and_downloads_work_on_both_databases(
    ledger: tuple[TestClient, TestSystem, dict[str, str]],
) -> None:
    client, timebank, headers = ledger
    sam, kim = add_member(client, headers, timebank), add_member(client, headers, timebank, "Kim")
    kept = exchange(client, headers, timebank, sam, kim, minutes=40, description="Tea").json()
    wrong = exchange(client, headers, timebank, kim, sam, minutes=15, date="2026-11-19").json()
    url = ledger_url(timebank, f"/exchanges/{wrong['id']}/reversal")
    reversal = client.post(url, json={"reason": "Never happened"}, headers=headers)
    ended = client.post(ledger_url(timebank, f"/members/{kim}/end"), json={}, headers=headers)
    refused = exchange(client, headers, timebank, sam, kim)

    assert reversal.status_code == 201, reversal.text
    assert (ended.status_code, refused.status_code) == (200, 409)
    assert UTC_INSTANT.match(ended.json()["ended_at"])
    listed = client.get(ledger_url(timebank, "/members"), headers=headers).json()
    assert [
        (m["balance_minutes"], m["given_minutes"], m["partners"], m["ended"]) for m in listed
    ] == [
        (40, 40, 1, False),
        (-40, 0, 1, True),
    ]
    download = client.get(ledger_url(timebank, "/exchanges.csv"), headers=headers)
    ids = [line.split(",")[7] for line in download.text.splitlines()[1:]]
    assert ids == [wrong["id"], reversal.json()["id"], kept["id"]]
    assert "Tea" in download.text
