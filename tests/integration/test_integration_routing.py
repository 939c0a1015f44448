"""Routing by a real Celery worker on Redis + PostgreSQL: choose, decline, re-route, accept, cancel."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.fixtures.fhir import FHIR_JSON
from tests.fixtures.referrals import Referral, make_referral
from tests.fixtures.systems import TestSystem, bearer
from tests.integration.conftest import Worker, add_timebank, wait_for

pytestmark = pytest.mark.slow


def inbox(client: TestClient, headers: dict[str, str], tb: TestSystem) -> list[dict[str, Any]]:
    found = client.get(
        f"/fhir/Task?owner=Organization/{tb.org_id}&status=requested", headers=headers
    )
    assert found.status_code == 200, found.text
    return [e["resource"] for e in found.json()["entry"]]


def answer(
    client: TestClient,
    headers: dict[str, str],
    task: dict[str, Any],
    status: str,
    reason: str | None = None,
) -> Any:
    task = dict(task, status=status)
    if reason:
        task["statusReason"] = {"text": reason}
    response = client.put(f"/fhir/Task/{task['id']}", json=task, headers={**headers, **FHIR_JSON})
    assert response.status_code == 200, response.text
    return response.json()


def referral_task(
    client: TestClient, headers: dict[str, str], referral: Referral
) -> dict[str, Any]:
    return client.get(f"/fhir/{referral.task}", headers=headers).json()


def test_decline_reroutes_then_accept_then_gp_cancels(
    client: TestClient,
    session_factory: sessionmaker[Session],
    worker: Worker,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    near = add_timebank(
        session_factory, "Catford Time Bank", ["SE6"], ["befriending", "walking-group"], 3
    )
    far = add_timebank(session_factory, "Lewisham Time Bank", ["SE6", "SE13"], ["gardening"], 1)
    away = add_timebank(session_factory, "Hackney Time Bank", ["E8"], ["befriending"], 5)
    near_h, far_h, away_h = (bearer(client, tb) for tb in (near, far, away))
    referral = make_referral(client, practice_headers, practice.org_id)

    [first] = wait_for(lambda: inbox(client, near_h, near), what="routing to the first time bank")
    assert first["partOf"][0]["reference"] == referral.task
    assert (
        referral_task(client, practice_headers, referral)["businessStatus"]["coding"][0]["code"]
        == "routed"
    )
    filler = client.get(f"/fhir/{first['focus']['reference']}", headers=near_h).json()
    assert filler["intent"] == "filler-order"
    assert filler["basedOn"] == [{"reference": referral.service_request}]
    assert "supportingInfo" not in filler  # the Consent stays with the practice
    assert client.get(f"/fhir/{referral.service_request}", headers=near_h).status_code == 404
    assert client.get(f"/fhir/{referral.patient}", headers=near_h).status_code == 200
    assert client.get(f"/fhir/{referral.patient}", headers=away_h).status_code == 404

    answer(client, near_h, first, "rejected", "No befriending volunteers this month")
    [second] = wait_for(lambda: inbox(client, far_h, far), what="re-routing after a decline")
    assert inbox(client, near_h, near) == []

    accepted = answer(client, far_h, second, "accepted")
    assert accepted["status"] == "accepted"
    assert referral_task(client, practice_headers, referral)["status"] == "accepted"

    task = referral_task(client, practice_headers, referral)
    task.update(status="cancelled", statusReason={"text": "Patient moved away"})
    cancelled = client.put(
        f"/fhir/{referral.task}", json=task, headers={**practice_headers, **FHIR_JSON}
    )
    assert cancelled.status_code == 200, cancelled.text
    assert client.get(f"/fhir/Task/{second['id']}", headers=far_h).json()["status"] == "cancelled"
    assert (
        client.get(f"/fhir/{referral.service_request}", headers=practice_headers).json()["status"]
        == "revoked"
    )
    # capacity (1 slot) is free again: a new referral goes straight to the same time bank
    later = make_referral(client, practice_headers, practice.org_id, referral_id="REF-0002")
    for_later = wait_for(
        lambda: [
            t for t in inbox(client, near_h, near) if t["partOf"][0]["reference"] == later.task
        ],
        what="routing the second referral",
    )
    assert for_later


def test_every_candidate_declines_and_the_gp_is_told_why(
    client: TestClient,
    session_factory: sessionmaker[Session],
    worker: Worker,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    only = add_timebank(session_factory, "Catford Time Bank", ["SE6"], ["befriending"], 2)
    only_h = bearer(client, only)
    referral = make_referral(client, practice_headers, practice.org_id)
    [child] = wait_for(lambda: inbox(client, only_h, only), what="routing")

    answer(client, only_h, child, "rejected", "Full until spring")

    task = wait_for(
        lambda: (
            (t := referral_task(client, practice_headers, referral))["status"] == "rejected" and t
        ),
        what="the referral to be rejected",
    )
    assert "SE6" in task["statusReason"]["text"]
    assert "Full until spring" in task["statusReason"]["text"]


def test_no_time_bank_in_the_area(
    client: TestClient,
    session_factory: sessionmaker[Session],
    worker: Worker,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    add_timebank(session_factory, "Hackney Time Bank", ["E8"], ["befriending"], 5)
    referral = make_referral(client, practice_headers, practice.org_id)
    task = wait_for(
        lambda: (
            (t := referral_task(client, practice_headers, referral))["status"] == "rejected" and t
        ),
        what="the referral to be rejected",
    )
    assert task["statusReason"]["text"].startswith("No time bank serving SE6")
