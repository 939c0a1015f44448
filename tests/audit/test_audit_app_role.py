"""The application's database role (issue 7 item 16): `spis migrate` with SPIS_APP_DATABASE_ROLE
creates it and grants it only what the API needs. On the real PostgreSQL: as that role the audit
trail cannot be changed, removed or unprotected, and SPIS still works."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from referral_service.app import create_app
from referral_service.audit import sealer
from referral_service.audit.cli import verify_command
from referral_service.config import Settings
from referral_service.migrate import AppRoleError, grant_app_role
from tests.conftest import TEST_KEK
from tests.fixtures.referrals import make_referral
from tests.fixtures.systems import TestSystem, bearer
from tests.ledger.conftest import add_member, ledger_url

PASSWORD = "app-role-test-password"


@pytest.fixture
def app_role(pg_url: str, pg_engine: Engine) -> Iterator[str]:
    """A fresh role, created and granted by `spis migrate` as an operator runs it; dropped after
    (roles belong to the whole server, not to the test database)."""
    role = f"spis_app_{secrets.token_hex(4)}"
    env = {
        **os.environ,
        "SPIS_ENVIRONMENT": "test",
        "SPIS_DATABASE_URL": pg_url,
        "SPIS_KEK": TEST_KEK,
        "SPIS_APP_DATABASE_ROLE": role,
        "SPIS_APP_DATABASE_PASSWORD": PASSWORD,
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "referral_service.cli", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert f'"name": "{role}"' in done.stdout
        assert '"created": true' in done.stdout
        yield role
    finally:
        with pg_engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))


def as_role(pg_url: str, role: str) -> str:
    url = make_url(pg_url).set(username=role, password=PASSWORD)
    return url.render_as_string(hide_password=False)


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE audit_event DISABLE TRIGGER ALL",
        "ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only",
        "UPDATE audit_event SET detail = 'x'",
        "DELETE FROM audit_event",
        "TRUNCATE audit_event",
        "DROP TRIGGER audit_event_append_only ON audit_event",
        "DROP TRIGGER audit_event_enqueue ON audit_event",
        "ALTER TABLE audit_chain DISABLE TRIGGER ALL",
        "UPDATE audit_chain SET hash = prev_hash",
        "DELETE FROM audit_chain",
        "TRUNCATE audit_chain",
        "TRUNCATE audit_unsealed",
        "ALTER TABLE audit_event_group DISABLE TRIGGER ALL",
        "UPDATE audit_event_group SET tenant_org_id = 'x'",
        "DELETE FROM audit_event_group",
        "TRUNCATE audit_event_group",
        "ALTER TABLE audit_unsealed DISABLE TRIGGER audit_unsealed_guard",
        "ALTER TABLE resource DISABLE TRIGGER ALL",
        "TRUNCATE resource CASCADE",
        "UPDATE alembic_version SET version_num = 'x'",
        "CREATE TABLE sneaky (id int)",
    ],
)
def test_the_app_role_cannot_touch_the_audit_trail_or_the_schema(
    pg_url: str, app_role: str, session_factory: sessionmaker[Session], sql: str
) -> None:
    engine = create_engine(as_role(pg_url, app_role))
    try:
        with engine.begin() as conn:
            assert conn.scalar(text("SELECT current_user")) == app_role
            with pytest.raises(ProgrammingError) as refused:
                conn.execute(text(sql))
        assert refused.value.orig is not None
        assert refused.value.orig.sqlstate == "42501"  # insufficient_privilege
    finally:
        engine.dispose()


def test_spis_works_as_the_app_role(
    pg_url: str,
    app_role: str,
    settings: Settings,
    session_factory: sessionmaker[Session],
    practice: TestSystem,
    timebank: TestSystem,
) -> None:
    restricted = settings.model_copy(update={"database_url": as_role(pg_url, app_role)})
    with TestClient(create_app(restricted)) as client:
        practice_headers = bearer(client, practice)
        referral = make_referral(client, practice_headers, practice.org_id)
        found = client.get("/fhir/Patient", headers=practice_headers)
        assert found.status_code == 200, found.text
        assert found.json()["entry"][0]["resource"]["id"] == referral.patient.split("/")[1]
        timebank_headers = bearer(client, timebank)
        member = add_member(client, timebank_headers, timebank, "Sam")
        listed = client.get(ledger_url(timebank, "/members"), headers=timebank_headers)
        assert [m["id"] for m in listed.json()] == [member]

    with session_factory() as session:
        appended = session.scalar(text("SELECT count(*) FROM audit_event"))
    assert appended is not None
    assert appended > 5  # tokens, the intake, the searches, the ledger write
    checked = verify_command(restricted)  # an operator may verify as the app role too
    assert (checked["ok"], checked["checked"]) == (True, appended)


def test_the_app_role_seals_but_cannot_unqueue_an_unsealed_event(
    pg_url: str, app_role: str, session_factory: sessionmaker[Session]
) -> None:
    engine = create_engine(as_role(pg_url, app_role))
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO audit_event (id, recorded, action, kind, actor_client_id, "
                    "actor_org_id, entities, outcome) VALUES ('e-1', now(), 'R', 'read', 'c', "
                    "'o', '', 0)"
                )
            )
        for sql in ("DELETE FROM audit_unsealed", "UPDATE audit_unsealed SET event_seq = 9"):
            with engine.begin() as conn, pytest.raises(ProgrammingError) as refused:
                conn.execute(text(sql))
            assert refused.value.orig is not None
            assert refused.value.orig.sqlstate == "42501"
        assert sealer.seal_all(engine) == 1
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM audit_unsealed")) == 0
    finally:
        engine.dispose()


def test_granting_again_is_idempotent_and_needs_a_password_only_to_create(
    pg_url: str, app_role: str, tmp_path: Path
) -> None:
    assert grant_app_role(pg_url, app_role, None) is False  # exists: grants refreshed
    with pytest.raises(AppRoleError, match="SPIS_APP_DATABASE_PASSWORD"):
        grant_app_role(pg_url, f"{app_role}_missing", None)
    with pytest.raises(AppRoleError, match="lower-case PostgreSQL role name"):
        grant_app_role(pg_url, 'x"; DROP TABLE audit_event; --', "pw")
    with pytest.raises(AppRoleError, match="needs PostgreSQL"):
        grant_app_role(f"sqlite:///{tmp_path / 'spis.sqlite3'}", "spis_app", "pw")
