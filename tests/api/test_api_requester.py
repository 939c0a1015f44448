"""Issue 7 item 21: who may be a referral's requester. The practice's Organization, that same
organisation named by its own ODS code (a logical reference, as NHS FHIR APIs send it), or a
PractitionerRole at the practice contained in the ServiceRequest; nobody else."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_adapters import codes
from fhir_adapters.referral import filler_order
from tests.fixtures.fhir import FHIR_JSON, entry_of, referral_bundle
from tests.fixtures.systems import TestSystem


def ods(code: str) -> dict[str, Any]:
    return {"identifier": {"system": codes.ODS_SYSTEM, "value": code}}


def role_at(organization: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "PractitionerRole",
        "id": "gp",
        "practitioner": {"display": "Dr A Mensah"},
        "organization": organization,
        "code": [{"coding": [{"system": codes.SNOMED, "code": "62247001"}]}],
    }


def send(
    client: TestClient, headers: dict[str, str], org_id: str, requester: Any, **sr: Any
) -> Any:
    bundle = referral_bundle(org_id)
    resource = entry_of(bundle, "ServiceRequest")["resource"]
    resource["requester"] = requester
    resource.update(sr)
    return client.post("/fhir", json=bundle, headers={**headers, **FHIR_JSON})


def referral_task(client: TestClient, headers: dict[str, str], response: Any) -> dict[str, Any]:
    sr_ref = "/".join(response.json()["entry"][2]["response"]["location"].split("/")[:2])
    [entry] = client.get(f"/fhir/Task?focus={sr_ref}", headers=headers).json()["entry"]
    task: dict[str, Any] = entry["resource"]
    return task


def test_the_practice_by_its_own_ods_code_is_accepted(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    assert practice.ods_code
    response = send(client, practice_headers, practice.org_id, ods(practice.ods_code))

    assert response.status_code == 200, response.text
    task = referral_task(client, practice_headers, response)
    # SPIS's Task names the practice literally, so `Task?requester=Organization/<id>` finds it.
    assert task["requester"] == {"reference": f"Organization/{practice.org_id}"}
    found = client.get(
        f"/fhir/Task?requester=Organization/{practice.org_id}", headers=practice_headers
    ).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [task["id"]]


@pytest.mark.parametrize("by_ods", [False, True])
def test_a_contained_practitioner_role_at_the_practice_is_accepted(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str], by_ods: bool
) -> None:
    assert practice.ods_code
    org = ods(practice.ods_code) if by_ods else {"reference": f"Organization/{practice.org_id}"}

    response = send(
        client, practice_headers, practice.org_id, {"reference": "#gp"}, contained=[role_at(org)]
    )

    assert response.status_code == 200, response.text
    task = referral_task(client, practice_headers, response)
    assert task["requester"] == {"reference": f"Organization/{practice.org_id}"}


def test_the_filler_order_names_the_practice_for_a_contained_role() -> None:
    org = {"reference": "Organization/p1"}
    original = {
        "code": {},
        "subject": {"reference": "Patient/1"},
        "requester": {"reference": "#gp"},
        "contained": [role_at(org)],
    }

    filler = filler_order(original, "ServiceRequest/1", "Organization/tb", "2026-01-01T00:00:00Z")

    assert filler["requester"] == org
    assert "contained" not in filler  # the role stays with the practice's own ServiceRequest


@pytest.mark.parametrize(
    "requester",
    [
        ods("F84002"),  # another practice's ODS code
        {"reference": "Organization/spis"},
        {"reference": "#nobody"},  # no such contained resource
        # the practice's ODS code beside a literal reference to someone else
        {"reference": "Organization/spis", "identifier": ods("F84001")["identifier"]},
    ],
)
def test_a_requester_that_is_not_the_practice_is_refused(
    client: TestClient,
    practice: TestSystem,
    practice_b: TestSystem,
    practice_headers: dict[str, str],
    requester: dict[str, Any],
) -> None:
    response = send(client, practice_headers, practice.org_id, requester)

    assert response.status_code == 422, response.text
    [issue] = response.json()["issue"]
    assert issue["expression"] == ["ServiceRequest.requester"]
    assert client.get("/fhir/ServiceRequest", headers=practice_headers).json()["entry"] == []


def test_a_contained_role_at_another_practice_is_refused(
    client: TestClient,
    practice: TestSystem,
    practice_b: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    assert practice_b.ods_code
    response = send(
        client,
        practice_headers,
        practice.org_id,
        {"reference": "#gp"},
        contained=[role_at(ods(practice_b.ods_code))],
    )

    assert response.status_code == 422, response.text
    assert "organization must be the sending practice" in response.json()["issue"][0]["diagnostics"]
    assert client.get("/fhir/ServiceRequest", headers=practice_headers).json()["entry"] == []


def test_an_organization_that_is_not_there_is_refused_and_nothing_is_stored(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    """Every Organization a referral names must exist. The practice's own is known without a
    look (its token was issued for it); any other is looked up, and one that is not there
    fails the whole Bundle."""
    before = client.get("/fhir/ServiceRequest", headers=practice_headers).json()["total"]
    nowhere = {"reference": "Organization/3f1c0a9e-0000-4000-8000-000000000000"}

    response = send(
        client,
        practice_headers,
        practice.org_id,
        {"reference": f"Organization/{practice.org_id}"},
        performer=[nowhere],
    )

    assert response.status_code == 422, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "not-found"
    assert "refers to an unknown Organization" in outcome["issue"][0]["diagnostics"]
    after = client.get("/fhir/ServiceRequest", headers=practice_headers).json()["total"]
    assert after == before
