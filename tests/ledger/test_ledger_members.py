"""Members, offers and requests over HTTP, and who may use a time bank's ledger at all."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.fixtures.systems import TestSystem
from tests.ledger.conftest import add_member, ledger_url


def test_add_and_list_members(
    client: TestClient, timebank: TestSystem, timebank_headers: dict[str, str]
) -> None:
    response = client.post(
        ledger_url(timebank, "/members"), json={"alias": "  Sam  "}, headers=timebank_headers
    )

    assert response.status_code == 201, response.text
    member = response.json()
    assert member["alias"] == "Sam"
    assert member["referred"] is False
    assert member["referral_task"] is None
    assert member["enrolled_at"] is None
    listed = client.get(ledger_url(timebank, "/members"), headers=timebank_headers).json()
    assert [(m["id"], m["balance_minutes"]) for m in listed] == [(member["id"], 0)]


def test_a_new_member_has_an_empty_account(
    client: TestClient, timebank: TestSystem, timebank_headers: dict[str, str]
) -> None:
    member = add_member(client, timebank_headers, timebank)

    found = client.get(ledger_url(timebank, f"/members/{member}"), headers=timebank_headers)

    assert found.status_code == 200, found.text
    body = found.json()
    assert (body["balance_minutes"], body["given_minutes"], body["received_minutes"]) == (0, 0, 0)
    assert body["partners"] == 0
    assert body["indicators"] is None  # joined on their own: no co-production indicators


def test_alias_is_required_and_short(
    client: TestClient, timebank: TestSystem, timebank_headers: dict[str, str]
) -> None:
    url = ledger_url(timebank, "/members")
    for alias in ("   ", "x" * 81):
        response = client.post(url, json={"alias": alias}, headers=timebank_headers)
        assert response.status_code == 422, response.text
        issue = response.json()["issue"][0]
        assert issue["expression"] == ["alias"]
        assert alias.strip() not in issue["diagnostics"] or not alias.strip()
    assert client.get(url, headers=timebank_headers).json() == []


def test_unknown_member_is_404(
    client: TestClient, timebank: TestSystem, timebank_headers: dict[str, str]
) -> None:
    response = client.get(ledger_url(timebank, "/members/nobody"), headers=timebank_headers)
    assert response.status_code == 404
    assert response.json()["issue"][0]["code"] == "not-found"


def test_offers_and_requests(
    client: TestClient, timebank: TestSystem, timebank_headers: dict[str, str]
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")
    offer = {"category": "gardening", "description": "Weeding and pruning"}
    request = {"category": "digital-skills", "description": "Help with video calls"}

    made = client.post(
        ledger_url(timebank, f"/members/{sam}/offers"), json=offer, headers=timebank_headers
    )
    asked = client.post(
        ledger_url(timebank, f"/members/{ana}/requests"), json=request, headers=timebank_headers
    )

    assert made.status_code == 201, made.text
    assert asked.status_code == 201, asked.text
    offers = client.get(ledger_url(timebank, "/offers"), headers=timebank_headers).json()
    requests = client.get(ledger_url(timebank, "/requests"), headers=timebank_headers).json()
    assert [(o["member_id"], o["category"]) for o in offers] == [(sam, "gardening")]
    assert [(r["member_id"], r["category"]) for r in requests] == [(ana, "digital-skills")]
    music = client.get(
        ledger_url(timebank, "/offers"), params={"category": "music"}, headers=timebank_headers
    )
    assert music.json() == []


def test_listing_rules(
    client: TestClient, timebank: TestSystem, timebank_headers: dict[str, str]
) -> None:
    sam = add_member(client, timebank_headers, timebank)
    url = ledger_url(timebank, f"/members/{sam}/offers")
    bad_category = {"category": "astrology", "description": "Horoscopes"}
    too_long = {"category": "music", "description": "x" * 281}

    assert client.post(url, json=bad_category, headers=timebank_headers).status_code == 422
    assert client.post(url, json=too_long, headers=timebank_headers).status_code == 422
    unknown = client.post(
        ledger_url(timebank, "/members/nobody/offers"),
        json={"category": "music", "description": "Piano"},
        headers=timebank_headers,
    )
    assert unknown.status_code == 404
    listed = client.get(ledger_url(timebank, "/offers"), headers=timebank_headers)
    assert listed.json() == []
    filtered = client.get(
        ledger_url(timebank, "/offers"), params={"category": "astrology"}, headers=timebank_headers
    )
    assert filtered.status_code == 422


def test_only_the_time_bank_itself_may_use_its_ledger(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    practice_headers: dict[str, str],
    other_timebank_headers: dict[str, str],
) -> None:
    add_member(client, timebank_headers, timebank)
    url = ledger_url(timebank, "/members")

    assert client.get(url).status_code == 401
    practice = client.get(url, headers=practice_headers)
    assert practice.status_code == 403
    assert practice.json()["issue"][0]["code"] == "forbidden"
    other = client.get(url, headers=other_timebank_headers)
    assert other.status_code == 404
    assert (
        client.post(url, json={"alias": "Eve"}, headers=other_timebank_headers).status_code == 404
    )


def test_each_time_bank_sees_only_its_members(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    other_timebank: TestSystem,
    other_timebank_headers: dict[str, str],
) -> None:
    mine = add_member(client, timebank_headers, timebank, "Sam")
    theirs = add_member(client, other_timebank_headers, other_timebank, "Kim")

    listed = client.get(ledger_url(timebank, "/members"), headers=timebank_headers).json()
    assert [m["id"] for m in listed] == [mine]
    across = client.get(ledger_url(timebank, f"/members/{theirs}"), headers=timebank_headers)
    assert across.status_code == 404
