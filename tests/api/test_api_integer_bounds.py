"""Integers from the query string and the path are bounded before they reach SQL (issue 7 #30):
a number beyond the database's range is the caller's mistake (400, or 404 for a version that
cannot exist), never a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from referral_service.kit.numbers import MAX_SQL_INT, whole_number
from tests.fixtures.referrals import Referral
from tests.fixtures.systems import HttpResponse, TestSystem

TOO_BIG = [str(MAX_SQL_INT + 1), "9223372036854775808", "9" * 5000, "²", "١٢"]


def _assert_outcome(response: HttpResponse, status: int, code: str, words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    [issue] = body["issue"]
    assert issue["code"] == code
    assert words in issue["diagnostics"]


def test_whole_number_accepts_only_ascii_digits_within_the_bound() -> None:
    assert whole_number("0") == 0
    assert whole_number("000000000000042") == 42
    assert whole_number(str(MAX_SQL_INT)) == MAX_SQL_INT
    for bad in [*TOO_BIG, "", "-1", "1.5", " 1", "0x10"]:
        assert whole_number(bad) is None, bad


@pytest.mark.parametrize("name", ["_offset", "_count"])
@pytest.mark.parametrize("value", TOO_BIG)
def test_fhir_search_paging_beyond_the_range_is_a_400(
    client: TestClient, practice_headers: dict[str, str], name: str, value: str
) -> None:
    response = client.get(f"/fhir/Task?{name}={value}", headers=practice_headers)
    _assert_outcome(response, 400, "invalid", f"{name} must be a whole number from 0 to")


def test_fhir_search_at_the_largest_offset_is_an_empty_page(
    client: TestClient, practice_headers: dict[str, str], referral: Referral
) -> None:
    response = client.get(f"/fhir/Task?_offset={MAX_SQL_INT}", headers=practice_headers)
    assert response.status_code == 200, response.text
    assert response.json()["entry"] == []


@pytest.mark.parametrize("name", ["_offset", "_count"])
@pytest.mark.parametrize("value", TOO_BIG)
def test_audit_event_paging_beyond_the_range_is_a_400(
    client: TestClient, practice_headers: dict[str, str], referral: Referral, name: str, value: str
) -> None:
    response = client.get(
        f"/fhir/AuditEvent?patient={referral.patient}&{name}={value}", headers=practice_headers
    )
    _assert_outcome(response, 400, "invalid", f"{name} must be a whole number from 0 to")


@pytest.mark.parametrize("vid", [*TOO_BIG, "0"])
def test_vread_of_a_version_beyond_the_range_is_a_404(
    client: TestClient, practice_headers: dict[str, str], referral: Referral, vid: str
) -> None:
    response = client.get(f"/fhir/{referral.task}/_history/{vid}", headers=practice_headers)
    _assert_outcome(response, 404, "not-found", f"has no version {vid}")
    ok = client.get(f"/fhir/{referral.task}/_history/1", headers=practice_headers)
    assert ok.status_code == 200


@pytest.mark.parametrize("value", [str(MAX_SQL_INT + 1), "9223372036854775808", "9" * 5000])
def test_ledger_offset_beyond_the_range_is_a_400(
    client: TestClient, timebank: TestSystem, timebank_headers: dict[str, str], value: str
) -> None:
    response = client.get(
        f"/api/timebanks/{timebank.org_id}/exchanges?offset={value}", headers=timebank_headers
    )
    _assert_outcome(response, 400, "invalid", "query.offset")
    largest = client.get(
        f"/api/timebanks/{timebank.org_id}/exchanges?offset={MAX_SQL_INT}",
        headers=timebank_headers,
    )
    assert largest.status_code == 200, largest.text
    assert largest.json() == []
