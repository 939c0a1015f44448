"""The embedded default: a time bank's batch of questionnaires on SQLite (the store's queued rows
go by executemany there, the shared reads and Consents by the same queries)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.questionnaire_form import questionnaire_response
from referral_service.app import create_app
from referral_service.config import Settings
from referral_service.db import make_engine, make_sessionmaker
from referral_service.migrate import upgrade
from referral_service.organisations.models import OrgKind
from tests.fixtures.fhir import FHIR_JSON
from tests.fixtures.referrals import make_referral
from tests.fixtures.routing import add_timebank, route_now
from tests.fixtures.systems import TestSystem, bearer, register_system

World = tuple[TestClient, TestSystem, TestSystem, Settings, sessionmaker[Session]]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    settings = Settings(
        environment="test", var_dir=tmp_path / "var", public_base_url="http://testserver"
    )
    assert settings.database_url.startswith("sqlite:///")
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    factory = make_sessionmaker(engine)
    practice = register_system(factory, OrgKind.PRACTICE, ods="F84001")
    timebank = add_timebank(factory, "Catford Time Bank", ["SE6"], ["befriending"], 5)
    with TestClient(create_app(settings)) as client:
        yield client, practice, timebank, settings, factory
    engine.dispose()


def test_a_batch_of_questionnaires_on_sqlite(world: World) -> None:
    client, practice, timebank, settings, factory = world
    referral = make_referral(client, bearer(client, practice), practice.org_id)
    child_id = route_now(factory, settings, referral.task_id)
    headers = {**bearer(client, timebank), **FHIR_JSON}
    task = client.get(f"/fhir/Task/{child_id}", headers=headers).json()
    accepted = client.put(
        f"/fhir/Task/{child_id}", json={**task, "status": "accepted"}, headers=headers
    )
    assert accepted.status_code == 200, accepted.text
    filler = accepted.json()["focus"]["reference"]
    entries = [
        {
            "resource": questionnaire_response(
                "ucla3",
                {"1": "1", "2": "2", "3": "3"},
                patient_ref=based_on_patient,
                based_on_ref=filler,
                authored="2026-01-02T10:00:00Z",
            ),
            "request": {"method": "POST", "url": "QuestionnaireResponse"},
        }
        for based_on_patient in (referral.patient, referral.patient, "Patient/someone-else")
    ]
    answer = client.post(
        "/fhir", json={"resourceType": "Bundle", "type": "batch", "entry": entries}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    statuses = [e["response"]["status"] for e in answer.json()["entry"]]
    assert statuses[:2] == ["201 Created"] * 2
    assert not statuses[2].startswith("2")
    with factory() as session:
        grants = session.execute(
            text(
                "SELECT r.type, g.org_id FROM resource r JOIN resource_grant g "
                "ON g.resource_id = r.id WHERE r.type IN ('QuestionnaireResponse', 'Observation')"
            )
        ).all()
    assert sorted(grants) == sorted(
        [("QuestionnaireResponse", practice.org_id)] * 2 + [("Observation", practice.org_id)] * 2
    )
