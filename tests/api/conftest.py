"""Helpers shared by the API tests: a practice with one referral already made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.fhir import FHIR_JSON, referral_bundle
from tests.fixtures.systems import TestSystem


@dataclass
class Referral:
    patient: str
    consent: str
    service_request: str
    task: str
    task_id: str


def make_referral(
    client: TestClient, headers: dict[str, str], org_id: str, **kwargs: Any
) -> Referral:
    response = client.post(
        "/fhir", json=referral_bundle(org_id, **kwargs), headers={**headers, **FHIR_JSON}
    )
    assert response.status_code == 200, response.text
    refs = ["/".join(e["response"]["location"].split("/")[:2]) for e in response.json()["entry"]]
    tasks = client.get(f"/fhir/Task?focus={refs[2]}", headers=headers).json()
    task_id = tasks["entry"][0]["resource"]["id"]
    return Referral(refs[0], refs[1], refs[2], f"Task/{task_id}", task_id)


@pytest.fixture
def referral(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> Referral:
    return make_referral(client, practice_headers, practice.org_id)
