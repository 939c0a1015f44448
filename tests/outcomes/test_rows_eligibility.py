"""Withdrawal and the national data opt-out take a person out of every later report at once: in
the transaction that changes the Consent or the Patient, before any job runs. Permission given
again comes back through the refresh job."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.consent.rules import NATIONAL_OPT_OUT
from referral_service.outcomes.models import ReferralOutcome
from tests.fixtures.fhir import FHIR_JSON
from tests.fixtures.referrals import Referral, make_referral
from tests.fixtures.systems import TestSystem
from tests.outcomes.rows_support import pending_refreshes, referral_row, run_refreshes

SECONDARY_USE = "secondary-use"


def put(client: TestClient, headers: dict[str, str], ref: str, body: dict[str, Any]) -> None:
    response = client.put(f"/fhir/{ref}", json=body, headers={**headers, **FHIR_JSON})
    assert response.status_code == 200, response.text


def read(client: TestClient, headers: dict[str, str], ref: str) -> dict[str, Any]:
    return dict(client.get(f"/fhir/{ref}", headers=headers).json())


def with_secondary_use(consent: dict[str, Any], kind: str) -> dict[str, Any]:
    """The Consent with its secondary-use provision set to `permit` or `deny`."""
    changed = copy.deepcopy(consent)
    for provision in changed["provision"]["provision"]:
        if any(
            coding["code"] == SECONDARY_USE
            for concept in provision.get("code", [])
            for coding in concept["coding"]
        ):
            provision["type"] = kind
    return changed


def eligible(session_factory: sessionmaker[Session], referral_ids: list[str]) -> list[bool]:
    with session_factory() as session:
        return [session.get_one(ReferralOutcome, rid).eligible for rid in referral_ids]


@pytest.fixture
def two_referrals(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    referral: Referral,
) -> list[str]:
    """The same person referred twice (one Patient), with rows kept by the refresh."""
    again = make_referral(client, practice_headers, practice.org_id, referral_id="REF-0002")
    assert again.patient == referral.patient
    run_refreshes(session_factory, settings)
    ids = [referral.task_id, again.task_id]
    assert eligible(session_factory, ids) == [True, True]
    return ids


def test_withdrawing_secondary_use_excludes_at_once_and_permission_returns_by_the_job(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice_headers: dict[str, str],
    referral: Referral,
    two_referrals: list[str],
) -> None:
    consent = read(client, practice_headers, referral.consent)
    put(client, practice_headers, referral.consent, with_secondary_use(consent, "deny"))
    # No job has run: the request's own transaction marked the rows.
    assert pending_refreshes(session_factory) == [{"patient": referral.patient.split("/")[1]}]
    assert eligible(session_factory, two_referrals) == [False, False]
    run_refreshes(session_factory, settings)  # the refresh agrees
    assert eligible(session_factory, two_referrals) == [False, False]
    # the referrals themselves go on: only secondary use was withdrawn
    assert referral_row(session_factory, referral.task_id).status == "requested"

    consent = read(client, practice_headers, referral.consent)
    put(client, practice_headers, referral.consent, with_secondary_use(consent, "permit"))
    assert eligible(session_factory, two_referrals) == [False, False]  # until the job runs
    assert run_refreshes(session_factory, settings) == 1
    assert eligible(session_factory, two_referrals) == [True, True]


def test_withdrawing_the_whole_consent_excludes_at_once(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice_headers: dict[str, str],
    referral: Referral,
    two_referrals: list[str],
) -> None:
    consent = read(client, practice_headers, referral.consent)
    put(client, practice_headers, referral.consent, {**consent, "status": "inactive"})
    assert eligible(session_factory, two_referrals) == [False, False]
    run_refreshes(session_factory, settings)
    assert eligible(session_factory, two_referrals) == [False, False]
    assert referral_row(session_factory, referral.task_id).status == "cancelled"


def test_the_national_data_opt_out_excludes_at_once_and_clearing_it_returns_by_the_job(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice_headers: dict[str, str],
    referral: Referral,
    two_referrals: list[str],
) -> None:
    patient = read(client, practice_headers, referral.patient)
    opted_out = {**patient, "extension": [{"url": NATIONAL_OPT_OUT, "valueBoolean": True}]}
    put(client, practice_headers, referral.patient, opted_out)
    assert eligible(session_factory, two_referrals) == [False, False]
    run_refreshes(session_factory, settings)
    assert eligible(session_factory, two_referrals) == [False, False]

    cleared = {k: v for k, v in read(client, practice_headers, referral.patient).items()}
    cleared.pop("extension")
    put(client, practice_headers, referral.patient, cleared)
    assert eligible(session_factory, two_referrals) == [False, False]
    run_refreshes(session_factory, settings)
    assert eligible(session_factory, two_referrals) == [True, True]


def test_another_patients_rows_are_left_alone(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    referral: Referral,
) -> None:
    other = make_referral(
        client, practice_headers, practice.org_id, nhs_number="9000000009", referral_id="REF-0009"
    )
    run_refreshes(session_factory, settings)
    consent = read(client, practice_headers, referral.consent)
    put(client, practice_headers, referral.consent, {**consent, "status": "inactive"})
    assert eligible(session_factory, [referral.task_id, other.task_id]) == [False, True]
