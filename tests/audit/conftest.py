"""Audit test fixtures. Until the lead wires the audit package in, this conftest does it for
these tests: the models module is imported (so the tables are known and emptied between tests),
and the `/fhir/AuditEvent` router is put in front of the generic `/fhir/{rtype}` routes.
TODO(lead): drop `app` below once app.py includes the router.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

import referral_service.audit.models  # noqa: F401 - registers audit_event with Base.metadata
from referral_service.audit import sealer
from referral_service.auth import access
from referral_service.config import Settings
from referral_service.organisations.models import OrgKind
from referral_service.principal import Principal
from tests.fixtures.systems import TestSystem

# The practice ceiling has no AuditEvent scope yet (TODO(lead) in scopes.py): tokens for these
# tests are minted directly, which is what /auth/token will return once it has.
AUDIT_SCOPE = "system/AuditEvent.rs"


def audit_headers(
    settings: Settings, system: TestSystem, scope: str | None = None
) -> dict[str, str]:
    scopes = scope if scope is not None else f"{system.scopes} {AUDIT_SCOPE}"
    issued = access.issue(
        settings,
        client_id=system.client_id,
        org_id=system.org_id,
        org_kind=system.kind,
        scope=scopes,
    )
    return {"Authorization": f"Bearer {issued.token}"}


def principal_of(system: TestSystem) -> Principal:
    return Principal(system.client_id, system.org_id, system.kind, frozenset())


def a_principal(org_id: str = "org-a", kind: OrgKind = OrgKind.PRACTICE) -> Principal:
    return Principal(f"client-{org_id}", org_id, kind, frozenset())


def seal(factory: sessionmaker[Session]) -> int:
    """Chain everything committed so far, as the sealer thread would within a second."""
    engine = factory.kw["bind"]
    assert isinstance(engine, Engine)
    return sealer.seal_all(engine)


Tamper = Callable[..., None]
AUDIT_TABLES = ("audit_event", "audit_chain", "audit_unsealed", "audit_event_group")


@pytest.fixture
def tamper(pg_engine: Engine) -> Tamper:
    """Run SQL on the audit tables as an attacker who owns them: every trigger off (the queue
    trigger, the append-only guards and the foreign key's), change, back on."""

    def run(sql: str, **params: object) -> None:
        with pg_engine.begin() as conn:
            for table in AUDIT_TABLES:
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER ALL"))
            conn.execute(text(sql), params)
            for table in AUDIT_TABLES:
                conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER ALL"))

    return run
