"""A NUL character (U+0000) in a request is the caller's mistake, never a 500 (found by fuzzing the
OpenAPI, issue 7 #27): PostgreSQL text cannot hold one, so it used to fail inside a query."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.fhir import FHIR_JSON, referral_bundle
from tests.fixtures.referrals import Referral
from tests.fixtures.systems import HttpResponse, TestSystem

NUL_MESSAGE = "Text must not contain the NUL character (U+0000)"


def _assert_refused(response: HttpResponse) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert [(i["code"], i["diagnostics"]) for i in body["issue"]] == [("invalid", NUL_MESSAGE)]


@pytest.mark.parametrize(
    "url",
    [
        "/fhir/Task?status=%00",
        "/fhir/Task?_id=a%00",
        "/fhir/Task?patient=Patient/%00",
        "/fhir/Task?sta%00tus=x",
        "/fhir/Task/%00",
        "/fhir/Task/a%00b/_history",
        "/fhir/Task/a%00b/_history/1",
        "/fhir/AuditEvent?patient=Patient/%00",
        "/fhir/AuditEvent/%00",
        "/fhir/Organization?_id=%00",
    ],
)
def test_a_nul_in_a_fhir_url_is_a_400(
    client: TestClient, practice_headers: dict[str, str], url: str
) -> None:
    _assert_refused(client.get(url, headers=practice_headers))


def test_a_nul_in_a_fhir_body_is_a_400_and_stores_nothing(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str], referral: Referral
) -> None:
    bundle = referral_bundle(practice.org_id, referral_id="REF-\u0000-2")
    response = client.post("/fhir", json=bundle, headers={**practice_headers, **FHIR_JSON})
    _assert_refused(response)
    found = client.get("/fhir/ServiceRequest", headers=practice_headers).json()
    assert len(found["entry"]) == 1  # only the referral made before


def test_a_nul_in_a_fhir_body_key_is_a_400(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    bundle = referral_bundle(practice.org_id, referral_id="REF-KEY-1")
    bundle["entry"][0]["resource"]["gen\u0000der"] = "female"
    response = client.post("/fhir", json=bundle, headers={**practice_headers, **FHIR_JSON})
    _assert_refused(response)


def test_the_text_backslash_u0000_in_a_fhir_body_is_no_nul(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    """The JSON escape for a backslash followed by "u0000" is text, not the NUL character."""
    bundle = referral_bundle(practice.org_id, referral_id="REF-\\u0000-3")
    response = client.post("/fhir", json=bundle, headers={**practice_headers, **FHIR_JSON})
    assert response.status_code == 200, response.text
    found = client.get("/fhir/ServiceRequest", headers=practice_headers).json()
    [entry] = found["entry"]
    values = [i["value"] for i in entry["resource"]["identifier"]]
    assert "REF-\\u0000-3" in values


@pytest.mark.parametrize(
    "path",
    ["/members/%00", "/exchanges?member_id=%00", "/offers?category=%00"],
)
def test_a_nul_in_a_ledger_url_is_a_400(
    client: TestClient, timebank: TestSystem, timebank_headers: dict[str, str], path: str
) -> None:
    response = client.get(f"/api/timebanks/{timebank.org_id}{path}", headers=timebank_headers)
    _assert_refused(response)


# A NUL in a ledger body id is a 404 (no id can hold one): tests/ledger/test_ledger_input_bounds.py
