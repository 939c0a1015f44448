"""`POST /fhir` as a plain route answers as the FastAPI route did: its checks in the same order
(the Accept header, the token, then the body), `/fhir/` too, and 405 for another method."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.fixtures.fhir import FHIR_JSON, referral_bundle
from tests.fixtures.systems import TestSystem


def test_checks_come_in_the_same_order_and_other_methods_are_not_allowed(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    bundle = referral_bundle(practice.org_id, nhs_number="9434765919", referral_id="R-1")
    text = {"content-type": "text/plain"}
    assert (
        client.post("/fhir", content=b"{}", headers={**text, "accept": "text/html"}).status_code
        == 406
    )
    assert client.post("/fhir", content=b"{}", headers=text).status_code == 401
    assert (
        client.post("/fhir", content=b"{}", headers={**practice_headers, **text}).status_code == 415
    )
    not_json = client.post("/fhir", content=b"{", headers={**practice_headers, **FHIR_JSON})
    assert not_json.status_code == 400
    wrong = client.post(
        "/fhir", json={**bundle, "type": "collection"}, headers={**practice_headers, **FHIR_JSON}
    )
    assert wrong.status_code == 400
    assert wrong.json()["resourceType"] == "OperationOutcome"
    for method in ("GET", "PUT", "DELETE"):
        answer = client.request(method, "/fhir", headers=practice_headers)
        assert answer.status_code == 405, (method, answer.text)
    slash = client.post("/fhir/", json=bundle, headers={**practice_headers, **FHIR_JSON})
    assert slash.status_code == 200, slash.text
    assert slash.json()["type"] == "transaction-response"
