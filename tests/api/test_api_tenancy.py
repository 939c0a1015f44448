"""Practice B can neither see nor change practice A's referrals: 404s and empty results."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.fixtures.fhir import FHIR_JSON, referral_bundle
from tests.fixtures.referrals import Referral
from tests.fixtures.systems import TestSystem


def test_other_practice_gets_404_on_read_vread_history(
    client: TestClient, practice_b_headers: dict[str, str], referral: Referral
) -> None:
    for url in (
        f"/fhir/{referral.service_request}",
        f"/fhir/{referral.task}/_history/1",
        f"/fhir/{referral.patient}/_history",
        f"/fhir/{referral.consent}",
    ):
        response = client.get(url, headers=practice_b_headers)
        assert response.status_code == 404, url
        assert response.json()["issue"][0]["code"] == "not-found"


def test_other_practice_searches_find_nothing(
    client: TestClient, practice_b_headers: dict[str, str], referral: Referral
) -> None:
    for url in (
        f"/fhir/ServiceRequest?_id={referral.service_request.split('/')[1]}",
        f"/fhir/Task?patient={referral.patient}",
        "/fhir/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919",
        "/fhir/Task?_include=Task:focus",
    ):
        bundle = client.get(url, headers=practice_b_headers).json()
        assert bundle["entry"] == [], url


def test_include_never_reaches_another_tenant(
    client: TestClient,
    practice_b: TestSystem,
    practice_b_headers: dict[str, str],
    referral: Referral,
) -> None:
    # B makes its own referral, then tries to include A's ServiceRequest through a Task of its own.
    bundle = referral_bundle(practice_b.org_id, referral_id="B-1")
    client.post("/fhir", json=bundle, headers={**practice_b_headers, **FHIR_JSON})
    found = client.get("/fhir/Task?_include=Task:focus", headers=practice_b_headers).json()
    refs = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in found["entry"]}
    assert referral.service_request not in refs
    assert len(refs) == 2


def test_other_practice_cannot_update_or_reference(
    client: TestClient,
    practice_b: TestSystem,
    practice_b_headers: dict[str, str],
    practice_headers: dict[str, str],
    referral: Referral,
) -> None:
    task = client.get(f"/fhir/{referral.task}", headers=practice_headers).json()
    task.update(status="cancelled", statusReason={"text": "hijack"})
    response = client.put(
        f"/fhir/{referral.task}", json=task, headers={**practice_b_headers, **FHIR_JSON}
    )
    assert response.status_code == 404

    sr = referral_bundle(practice_b.org_id, referral_id="B-2")["entry"][2]["resource"]
    sr["subject"] = {"reference": referral.patient}
    sr["supportingInfo"] = [{"reference": referral.consent}]
    response = client.post(
        "/fhir/ServiceRequest", json=sr, headers={**practice_b_headers, **FHIR_JSON}
    )
    assert response.status_code == 422
    assert response.json()["issue"][0]["code"] == "not-found"
    assert (
        client.get(f"/fhir/{referral.task}", headers=practice_headers).json()["status"]
        == "requested"
    )


def test_requester_must_be_the_calling_practice(
    client: TestClient, practice: TestSystem, practice_b_headers: dict[str, str]
) -> None:
    bundle = referral_bundle(practice.org_id)  # B sends a referral in A's name
    response = client.post("/fhir", json=bundle, headers={**practice_b_headers, **FHIR_JSON})
    assert response.status_code == 422
    assert "requester" in response.json()["issue"][0]["diagnostics"]
