"""The referral Task over HTTP: versioned updates, the state machine, who sets what, history."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.fixtures.fhir import FHIR_JSON
from tests.fixtures.referrals import Referral


def get_task(client: TestClient, headers: dict[str, str], referral: Referral) -> Any:
    return client.get(f"/fhir/{referral.task}", headers=headers)


def put_task(
    client: TestClient, headers: dict[str, str], task: dict[str, Any], **extra: str
) -> Any:
    return client.put(
        f"/fhir/Task/{task['id']}", json=task, headers={**headers, **FHIR_JSON, **extra}
    )


def test_read_has_etag_and_last_modified(
    client: TestClient, practice_headers: dict[str, str], referral: Referral
) -> None:
    response = get_task(client, practice_headers, referral)
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert response.headers["last-modified"].endswith("GMT")
    assert response.json()["id"] == referral.task_id
    again = client.get(
        f"/fhir/{referral.task}", headers={**practice_headers, "If-None-Match": 'W/"1"'}
    )
    assert again.status_code == 304


def test_practice_cancels_with_reason_and_history_is_kept(
    client: TestClient, practice_headers: dict[str, str], referral: Referral
) -> None:
    task = get_task(client, practice_headers, referral).json()
    task["status"] = "cancelled"
    task["statusReason"] = {"text": "Patient moved away"}

    response = put_task(client, practice_headers, task, **{"If-Match": 'W/"1"'})

    assert response.status_code == 200, response.text
    assert response.headers["etag"] == 'W/"2"'
    assert response.json()["status"] == "cancelled"
    assert response.json()["meta"]["versionId"] == "2"
    old = client.get(f"/fhir/{referral.task}/_history/1", headers=practice_headers).json()
    assert old["status"] == "requested"
    history = client.get(f"/fhir/{referral.task}/_history", headers=practice_headers).json()
    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    found = client.get("/fhir/Task?status=cancelled", headers=practice_headers).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [referral.task_id]


def test_cancel_without_reason_is_refused(
    client: TestClient, practice_headers: dict[str, str], referral: Referral
) -> None:
    task = get_task(client, practice_headers, referral).json()
    task["status"] = "cancelled"

    response = put_task(client, practice_headers, task)

    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["Task.statusReason.text"]
    assert get_task(client, practice_headers, referral).json()["status"] == "requested"


def test_stale_if_match_is_412_and_changes_nothing(
    client: TestClient, practice_headers: dict[str, str], referral: Referral
) -> None:
    task = get_task(client, practice_headers, referral).json()
    task["priority"] = "urgent"
    assert put_task(client, practice_headers, task, **{"If-Match": 'W/"1"'}).status_code == 200
    task["priority"] = "asap"

    response = put_task(client, practice_headers, task, **{"If-Match": 'W/"1"'})

    assert response.status_code == 412
    assert response.json()["issue"][0]["code"] == "conflict"
    assert get_task(client, practice_headers, referral).json()["priority"] == "urgent"


def test_forbidden_transition_is_409_business_rule(
    client: TestClient, practice_headers: dict[str, str], referral: Referral
) -> None:
    task = get_task(client, practice_headers, referral).json()
    task.update(status="cancelled", statusReason={"text": "Duplicate"})
    assert put_task(client, practice_headers, task).status_code == 200
    task = get_task(client, practice_headers, referral).json()
    task["status"] = "requested"

    response = put_task(client, practice_headers, task)

    assert response.status_code == 409
    issue = response.json()["issue"][0]
    assert issue["code"] == "business-rule"
    assert "cancelled to requested" in issue["diagnostics"]


def test_practice_cannot_accept_its_own_referral(
    client: TestClient, practice_headers: dict[str, str], referral: Referral
) -> None:
    task = get_task(client, practice_headers, referral).json()
    task["status"] = "accepted"

    response = put_task(client, practice_headers, task)

    assert response.status_code == 403
    assert response.json()["issue"][0]["code"] == "forbidden"


def test_fixed_elements_cannot_change(
    client: TestClient, practice_headers: dict[str, str], referral: Referral
) -> None:
    task = get_task(client, practice_headers, referral).json()
    task["focus"] = {"reference": referral.consent}

    response = put_task(client, practice_headers, task)

    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["Task.focus"]


def test_unknown_status_code_is_refused(
    client: TestClient, practice_headers: dict[str, str], referral: Referral
) -> None:
    task = get_task(client, practice_headers, referral).json()
    task["status"] = "received"  # a valid R4 task-status, but not in the SDOH referral value set

    response = put_task(client, practice_headers, task)

    assert response.status_code == 422
    assert response.json()["issue"][0]["code"] == "code-invalid"


def test_update_id_must_match_url(
    client: TestClient, practice_headers: dict[str, str], referral: Referral
) -> None:
    task = get_task(client, practice_headers, referral).json()
    response = client.put(
        "/fhir/Task/other-id", json=task, headers={**practice_headers, **FHIR_JSON}
    )
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
