"""Ledger test fixtures: a referral routed to the time bank (filler-order ServiceRequest + child
Task, Patient shared), built directly in the store so that tests can choose the child Task's
status and owner (the enrolment rules depend on both)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters import referral as fhir_referral
from fhir_adapters import task as fhir_task
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.organisations.models import OrgKind
from referral_service.principal import Principal
from referral_service.store import repository as store_repository
from referral_service.store import service as store
from tests.fixtures.referrals import Referral, make_referral
from tests.fixtures.systems import TestSystem, bearer, register_system


@dataclass
class Routed:
    referral: Referral  # the practice's original ServiceRequest, Patient and referral Task
    filler_id: str
    child_task_id: str
    timebank_org_id: str

    @property
    def patient_id(self) -> str:
        return self.referral.patient.partition("/")[2]

    @property
    def service_request_id(self) -> str:
        return self.referral.service_request.partition("/")[2]


def route(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    timebank_org_id: str,
    *,
    status: str = "accepted",
    owner_org_id: str | None = None,
    **referral_kwargs: Any,
) -> Routed:
    """Make a referral and route it to `timebank_org_id` (the Task owned by `owner_org_id`, by
    default that same time bank)."""
    referral = make_referral(client, practice_headers, practice.org_id, **referral_kwargs)
    owner = owner_org_id or timebank_org_id
    caller = Principal(practice.client_id, practice.org_id, OrgKind.PRACTICE, frozenset())
    now = "2026-01-05T09:00:00Z"
    with session_factory() as session, session.begin():
        ctx = Context(session, caller, settings)
        original = store.load_json(
            ctx, "ServiceRequest", referral.service_request.partition("/")[2]
        )
        assert original is not None
        # The shapes routing itself builds; status and owner set as the test needs them.
        filler_body = fhir_referral.filler_order(
            original, referral.service_request, f"Organization/{timebank_org_id}", now
        )
        filler = store.create(
            ctx,
            "ServiceRequest",
            filler_body,
            tenant=practice.org_id,
            share_with=(timebank_org_id,),
        )
        task_body = fhir_task.child_task(
            referral.task,
            f"ServiceRequest/{filler.id}",
            referral.patient,
            f"Organization/{owner}",
            now,
        )
        task_body["status"] = status
        task = store.create(
            ctx, "Task", task_body, tenant=practice.org_id, share_with=(timebank_org_id,)
        )
        store_repository.grant(session, referral.patient.partition("/")[2], [timebank_org_id])
    return Routed(referral, filler.id, task.id, timebank_org_id)


@pytest.fixture
def routed_referral(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    timebank: TestSystem,
) -> Routed:
    return route(client, session_factory, settings, practice, practice_headers, timebank.org_id)


@pytest.fixture
def other_timebank(session_factory: sessionmaker[Session]) -> TestSystem:
    return register_system(session_factory, OrgKind.TIMEBANK, name="Another Time Bank")


@pytest.fixture
def other_timebank_headers(client: TestClient, other_timebank: TestSystem) -> dict[str, str]:
    return bearer(client, other_timebank)


LEDGER_PATH = "/api/timebanks"


def ledger_url(timebank: TestSystem, path: str = "") -> str:
    return f"{LEDGER_PATH}/{timebank.org_id}{path}"


def add_member(
    client: TestClient, headers: dict[str, str], timebank: TestSystem, alias: str = "Sam"
) -> str:
    response = client.post(ledger_url(timebank, "/members"), json={"alias": alias}, headers=headers)
    assert response.status_code == 201, response.text
    member_id: str = response.json()["id"]
    return member_id


def enrol(
    client: TestClient,
    headers: dict[str, str],
    timebank: TestSystem,
    task_id: str,
    alias: str = "Grace",
) -> Any:
    body = {"child_task_id": task_id, "alias": alias}
    return client.post(ledger_url(timebank, "/enrolments"), json=body, headers=headers)


def exchange(
    client: TestClient,
    headers: dict[str, str],
    timebank: TestSystem,
    giver: str,
    receiver: str,
    **fields: Any,
) -> Any:
    body = {
        "giver_id": giver,
        "receiver_id": receiver,
        "minutes": 60,
        "date": "2026-11-20",
        "category": "befriending",
        **fields,
    }
    return client.post(ledger_url(timebank, "/exchanges"), json=body, headers=headers)


def reverse(
    client: TestClient,
    headers: dict[str, str],
    timebank: TestSystem,
    exchange_id: str,
    reason: str = "Entered twice by mistake",
) -> Any:
    url = ledger_url(timebank, f"/exchanges/{exchange_id}/reversal")
    return client.post(url, json={"reason": reason}, headers=headers)


def end_membership(
    client: TestClient,
    headers: dict[str, str],
    timebank: TestSystem,
    member_id: str,
    reason: str | None = None,
) -> Any:
    body = {} if reason is None else {"reason": reason}
    return client.post(
        ledger_url(timebank, f"/members/{member_id}/end"), json=body, headers=headers
    )


def context_of(session: Session, settings: Settings, system: TestSystem) -> Context:
    """The Context a web page would build for a signed-in person of `system`'s organisation."""
    principal = Principal(system.client_id, system.org_id, system.kind, frozenset())
    return Context(session, principal, settings)
