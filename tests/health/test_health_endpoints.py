"""/healthz says the process is up; /readyz says which of database, schema and broker is not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from referral_service.app import create_app
from referral_service.config import Settings
from referral_service.health.service import migration_heads
from referral_service.migrate import upgrade
from tests.conftest import TEST_KEK, new_database

REFUSED_PORT = 1  # nothing listens on port 1 of 127.0.0.1: connections are refused at once


def readyz(settings: Settings) -> tuple[int, dict[str, Any], str]:
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    return response.status_code, response.json(), response.headers["cache-control"]


def test_healthz_answers_while_the_process_runs(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["cache-control"] == "no-store"


def test_readyz_is_ready_on_a_migrated_database_with_a_broker(settings: Settings) -> None:
    status, body, cache = readyz(settings)
    assert (status, cache) == (200, "no-store")
    assert body == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "broker": "ok"},
        "failed": [],
    }


def test_readyz_names_an_unreachable_broker(settings: Settings) -> None:
    broken = settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{REFUSED_PORT}/0"})
    status, body, _ = readyz(broken)
    assert status == 503
    assert body["status"] == "not ready"
    assert body["failed"] == ["broker"]
    assert body["checks"]["broker"].startswith("unreachable (")
    assert body["checks"]["database"] == body["checks"]["migrations"] == "ok"


def test_readyz_names_an_unreachable_database_without_its_address(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://spis:hunter2secret@127.0.0.1:{REFUSED_PORT}/spis"
    status, body, _ = readyz(offline_settings(url, tmp_path))
    assert status == 503
    assert body["failed"] == ["database", "migrations"]
    assert body["checks"]["database"] == "unreachable (OperationalError)"
    assert body["checks"]["broker"] == "ok"
    assert "hunter2secret" not in str(body)
    assert "127.0.0.1" not in str(body)


@pytest.fixture
def empty_database() -> Iterator[str]:
    with new_database("spis_test_ready") as url:
        yield url


def test_readyz_says_when_the_schema_is_not_at_head(empty_database: str, tmp_path: Path) -> None:
    settings = offline_settings(empty_database, tmp_path)
    status, body, _ = readyz(settings)
    assert (status, body["failed"]) == (503, ["migrations"])
    assert body["checks"]["migrations"] == "not migrated: run `spis migrate`"

    [head] = migration_heads()
    previous = previous_revision(head)
    upgrade(empty_database, previous)
    status, body, _ = readyz(settings)
    assert (status, body["failed"]) == (503, ["migrations"])
    expected = f"at {previous}, expected {head}: run `spis migrate`"
    assert body["checks"]["migrations"] == expected

    upgrade(empty_database)
    status, body, _ = readyz(settings)
    assert (status, body["status"]) == (200, "ready")


def offline_settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        broker_url="memory://",
        var_dir=tmp_path / "var",
        kek=SecretStr(TEST_KEK),
    )


def previous_revision(head: str) -> str:
    from alembic.script import ScriptDirectory

    from referral_service.migrate import MIGRATIONS

    down = ScriptDirectory(str(MIGRATIONS)).get_revision(head).down_revision
    assert isinstance(down, str), "the head has one parent"
    return down


def test_readyz_on_the_embedded_default(tmp_path: Path) -> None:
    """SQLite file and on-disk broker, as `spis serve` runs them with no settings."""
    settings = Settings(environment="test", var_dir=tmp_path / "var", kek=SecretStr(TEST_KEK))
    assert settings.database_url.startswith("sqlite:///")
    upgrade(settings.database_url)
    status, body, _ = readyz(settings)
    assert (status, body["failed"]) == (200, []), body
