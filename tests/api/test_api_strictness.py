"""Issue 7 items 18-20, 22 and 23 over HTTP on PostgreSQL: what intake refuses, and that a refusal
stores nothing, routes nothing and says why."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.jobs.models import Job
from tests.fixtures.fhir import FHIR_JSON, entry_of, referral_bundle
from tests.fixtures.referrals import Referral
from tests.fixtures.systems import TestSystem

MODIFIER = [{"url": "https://example.org/fhir/StructureDefinition/do-not", "valueBoolean": True}]


def post(client: TestClient, headers: dict[str, str], body: dict[str, Any] | bytes) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/fhir", content=content, headers={**headers, **FHIR_JSON})


def stored(client: TestClient, headers: dict[str, str], rtype: str) -> list[Any]:
    found = client.get(f"/fhir/{rtype}", headers=headers).json()
    return [entry["resource"] for entry in found.get("entry", [])]


def jobs(session_factory: sessionmaker[Session]) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(Job)) or 0


def assert_nothing_stored(
    client: TestClient, headers: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    for rtype in ("Patient", "Consent", "ServiceRequest", "Task"):
        assert stored(client, headers, rtype) == [], rtype
    assert jobs(session_factory) == 0  # nothing routed


# --- 18: modifier extensions --------------------------------------------------------------------


def test_a_referral_with_an_unknown_modifier_extension_is_refused_and_not_routed(
    client: TestClient,
    practice: TestSystem,
    practice_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    bundle = referral_bundle(practice.org_id)
    consent = entry_of(bundle, "Consent")["resource"]
    consent["provision"]["provision"][0]["modifierExtension"] = MODIFIER

    response = post(client, practice_headers, bundle)

    assert response.status_code == 422, response.text
    [issue] = response.json()["issue"]
    assert issue["code"] == "extension"
    assert issue["expression"] == [
        "Bundle.entry[1].resource.provision.provision[0].modifierExtension"
    ]
    assert_nothing_stored(client, practice_headers, session_factory)


def test_an_update_carrying_a_modifier_extension_is_refused(
    client: TestClient, practice_headers: dict[str, str], referral: Referral
) -> None:
    sr = client.get(f"/fhir/{referral.service_request}", headers=practice_headers).json()
    sr["modifierExtension"] = MODIFIER

    response = client.put(
        f"/fhir/{referral.service_request}", json=sr, headers={**practice_headers, **FHIR_JSON}
    )

    assert response.status_code == 422, response.text
    assert response.json()["issue"][0]["code"] == "extension"
    after = client.get(f"/fhir/{referral.service_request}", headers=practice_headers).json()
    assert after["meta"]["versionId"] == "1"


# --- 19: duplicate keys -------------------------------------------------------------------------


def test_a_referral_with_a_repeated_key_is_400_and_stores_nothing(
    client: TestClient,
    practice: TestSystem,
    practice_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    text = json.dumps(referral_bundle(practice.org_id))
    # The ServiceRequest says "active" and then "draft": which one did the GP mean?
    body = text.replace(
        '"status": "active", "intent"', '"status": "active", "status": "draft", "intent"'
    )
    assert body != text

    response = post(client, practice_headers, body.encode())

    assert response.status_code == 400, response.text
    [issue] = response.json()["issue"]
    assert issue["code"] == "structure"
    assert issue["diagnostics"] == 'Request body has a JSON object with "status" more than once'
    assert_nothing_stored(client, practice_headers, session_factory)


def test_a_json_patch_with_a_repeated_key_changes_nothing(
    client: TestClient, practice_headers: dict[str, str], referral: Referral
) -> None:
    body = b'[{"op": "add", "path": "/priority", "value": "urgent", "value": "routine"}]'
    headers = {**practice_headers, "Content-Type": "application/json-patch+json"}

    response = client.patch(f"/fhir/{referral.service_request}", content=body, headers=headers)

    assert response.status_code == 400, response.text
    assert '"value" more than once' in response.json()["issue"][0]["diagnostics"]
    after = client.get(f"/fhir/{referral.service_request}", headers=practice_headers).json()
    assert after["meta"]["versionId"] == "1"


# --- 20: only an active referral ----------------------------------------------------------------


@pytest.mark.parametrize("status", ["draft", "revoked", "completed", "on-hold"])
def test_a_new_referral_that_is_not_active_is_refused(
    client: TestClient,
    practice: TestSystem,
    practice_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    status: str,
) -> None:
    bundle = referral_bundle(practice.org_id)
    entry_of(bundle, "ServiceRequest")["resource"]["status"] = status

    response = post(client, practice_headers, bundle)

    assert response.status_code == 422, response.text
    [issue] = response.json()["issue"]
    assert issue["code"] == "business-rule"
    assert issue["expression"] == ["ServiceRequest.status"]
    assert "must have status active" in issue["diagnostics"]
    assert_nothing_stored(client, practice_headers, session_factory)


def test_a_single_service_request_that_is_not_active_is_refused(
    client: TestClient, practice_headers: dict[str, str], referral: Referral
) -> None:
    sr = client.get(f"/fhir/{referral.service_request}", headers=practice_headers).json()
    for name in ("id", "meta", "identifier"):
        sr.pop(name)
    sr["status"] = "draft"

    response = client.post(
        "/fhir/ServiceRequest", json=sr, headers={**practice_headers, **FHIR_JSON}
    )

    assert response.status_code == 422, response.text
    assert response.json()["issue"][0]["code"] == "business-rule"
    assert len(stored(client, practice_headers, "ServiceRequest")) == 1


# --- 22: an entry without request ---------------------------------------------------------------


def test_an_entry_without_request_is_a_required_error(
    client: TestClient,
    practice: TestSystem,
    practice_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    bundle = referral_bundle(practice.org_id)
    del bundle["entry"][1]["request"]

    response = post(client, practice_headers, bundle)

    assert response.status_code == 400, response.text
    [issue] = response.json()["issue"]
    assert issue["code"] == "required"
    assert issue["expression"] == ["Bundle.entry[1].request"]
    assert "None" not in issue["diagnostics"]
    assert_nothing_stored(client, practice_headers, session_factory)


# --- 23: resending under the same identifier ----------------------------------------------------


def with_fresh_uuids(bundle: dict[str, Any]) -> dict[str, Any]:
    """What a client that rebuilds its Bundle for a retry sends: the same referral, new uuids."""
    text = json.dumps(bundle)
    for entry in bundle["entry"]:
        text = text.replace(entry["fullUrl"], f"urn:uuid:{uuid.uuid4()}")
    rebuilt: dict[str, Any] = json.loads(text)
    return rebuilt


def test_the_same_referral_resent_with_new_uuids_gets_the_first_answer(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    first = post(client, practice_headers, referral_bundle(practice.org_id)).json()

    again = post(client, practice_headers, with_fresh_uuids(referral_bundle(practice.org_id)))

    assert again.status_code == 200, again.text
    assert [e["response"]["location"] for e in again.json()["entry"]] == [
        e["response"]["location"] for e in first["entry"]
    ]
    assert len(stored(client, practice_headers, "Task")) == 1


def test_a_different_referral_under_a_used_identifier_is_409_and_changes_nothing(
    client: TestClient,
    practice: TestSystem,
    practice_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    post(client, practice_headers, referral_bundle(practice.org_id))
    jobs_before = jobs(session_factory)
    changed = referral_bundle(practice.org_id)
    entry_of(changed, "ServiceRequest")["resource"]["priority"] = "urgent"

    response = post(client, practice_headers, changed)

    assert response.status_code == 409, response.text
    [issue] = response.json()["issue"]
    assert issue["code"] == "duplicate"
    assert issue["expression"] == ["ServiceRequest.identifier"]
    assert "already used for a different referral" in issue["diagnostics"]
    [sr] = stored(client, practice_headers, "ServiceRequest")
    assert sr["priority"] == "routine"
    assert sr["meta"]["versionId"] == "1"
    assert len(stored(client, practice_headers, "Task")) == 1
    assert jobs(session_factory) == jobs_before


def test_a_different_patient_under_a_used_identifier_is_409(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    post(client, practice_headers, referral_bundle(practice.org_id))

    response = post(
        client, practice_headers, referral_bundle(practice.org_id, nhs_number="9000000009")
    )

    assert response.status_code == 409, response.text
    assert len(stored(client, practice_headers, "Patient")) == 1
