"""The embedded default: the same API on a migrated SQLite file (a smoke subset)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from referral_service.app import create_app
from referral_service.config import Settings
from referral_service.db import make_engine, make_sessionmaker
from referral_service.migrate import upgrade
from referral_service.organisations.models import OrgKind
from tests.fixtures.fhir import FHIR_JSON, referral_bundle
from tests.fixtures.systems import TestSystem, bearer, register_system


@pytest.fixture
def sqlite_world(tmp_path: Path) -> Iterator[tuple[TestClient, TestSystem, TestSystem, Settings]]:
    settings = Settings(
        environment="test", var_dir=tmp_path / "var", public_base_url="http://testserver"
    )
    assert settings.database_url.startswith("sqlite:///")
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    factory = make_sessionmaker(engine)
    a = register_system(factory, OrgKind.PRACTICE, ods="F84001")
    b = register_system(factory, OrgKind.PRACTICE, ods="F84002")
    with TestClient(create_app(settings)) as client:
        yield client, a, b, settings
    engine.dispose()


def test_referral_loop_on_sqlite(
    sqlite_world: tuple[TestClient, TestSystem, TestSystem, Settings],
) -> None:
    client, practice, other, settings = sqlite_world
    headers = bearer(client, practice)
    answer = client.post(
        "/fhir", json=referral_bundle(practice.org_id), headers={**headers, **FHIR_JSON}
    )
    assert answer.status_code == 200, answer.text
    sr_ref = "/".join(answer.json()["entry"][2]["response"]["location"].split("/")[:2])

    [task] = [
        e["resource"]
        for e in client.get(f"/fhir/Task?focus={sr_ref}", headers=headers).json()["entry"]
    ]
    task.update(status="cancelled", statusReason={"text": "Patient declined"})
    updated = client.put(
        f"/fhir/Task/{task['id']}", json=task, headers={**headers, **FHIR_JSON, "If-Match": 'W/"1"'}
    )
    assert updated.status_code == 200, updated.text
    assert updated.headers["etag"] == 'W/"2"'
    stale = client.put(
        f"/fhir/Task/{task['id']}", json=task, headers={**headers, **FHIR_JSON, "If-Match": 'W/"1"'}
    )
    assert stale.status_code == 412

    found = client.get(
        "/fhir/Task?status=cancelled&_lastUpdated=gt2020-01-01", headers=headers
    ).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [task["id"]]
    assert client.get(f"/fhir/Task/{task['id']}", headers=bearer(client, other)).status_code == 404

    again = client.post(
        "/fhir", json=referral_bundle(practice.org_id), headers={**headers, **FHIR_JSON}
    )
    assert [e["response"]["status"] for e in again.json()["entry"]] == ["200 OK"] * 3
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM resource WHERE type = 'Task'")).scalar() == 1
    engine.dispose()
