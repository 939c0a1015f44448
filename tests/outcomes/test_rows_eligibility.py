"""Withdrawal and the national data opt-out take a person out of every later report at once: in
the transaction that changes the Consent or the Patient, before any job runs. Permission given
again comes back through the refresh job."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
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

Json = dict[str, Any]


@dataclass(frozen=True)
class Scene:
    """The referring practice over FHIR, the refresh job, and the outcome rows they change."""

    client: TestClient
    headers: dict[str, str]
    org_id: str
    session_factory: sessionmaker[Session]
    settings: Settings

    def change(self, ref: str, edit: Callable[[Json], Json]) -> None:
        """Read `ref` and PUT back what `edit` makes of it."""
        current = dict(self.client.get(f"/fhir/{ref}", headers=self.headers).json())
        headers = {**self.headers, **FHIR_JSON}
        response = self.client.put(f"/fhir/{ref}", json=edit(current), headers=headers)
        assert response.status_code == 200, response.text

    def refer(self, **fields: str) -> Referral:
        return make_referral(self.client, self.headers, self.org_id, **fields)

    def refresh(self) -> int:
        return run_refreshes(self.session_factory, self.settings)

    def eligible(self, referral_ids: list[str]) -> list[bool]:
        with self.session_factory() as session:
            return [session.get_one(ReferralOutcome, rid).eligible for rid in referral_ids]


def secondary_use(kind: str) -> Callable[[Json], Json]:
    """The Consent with its secondary-use provision set to `permit` or `deny`."""

    def edit(consent: Json) -> Json:
        changed = copy.deepcopy(consent)
        for provision in changed["provision"]["provision"]:
            if any(
                coding["code"] == SECONDARY_USE
                for concept in provision.get("code", [])
                for coding in concept["coding"]
            ):
                provision["type"] = kind
        return changed

    return edit


def inactive(consent: Json) -> Json:
    return {**consent, "status": "inactive"}


def opted_out(patient: Json) -> Json:
    return {**patient, "extension": [{"url": NATIONAL_OPT_OUT, "valueBoolean": True}]}


def opt_out_cleared(patient: Json) -> Json:
    cleared = dict(patient)
    cleared.pop("extension")
    return cleared


@pytest.fixture
def scene(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> Scene:
    return Scene(client, practice_headers, practice.org_id, session_factory, settings)


@pytest.fixture
def two_referrals(scene: Scene, referral: Referral) -> list[str]:
    """The same person referred twice (one Patient), with rows kept by the refresh."""
    again = scene.refer(referral_id="REF-0002")
    assert again.patient == referral.patient
    scene.refresh()
    ids = [referral.task_id, again.task_id]
    assert scene.eligible(ids) == [True, True]
    return ids


def test_withdrawing_secondary_use_excludes_at_once_and_permission_returns_by_the_job(
    scene: Scene, referral: Referral, two_referrals: list[str]
) -> None:
    scene.change(referral.consent, secondary_use("deny"))
    # No job has run: the request's own transaction marked the rows.
    assert pending_refreshes(scene.session_factory) == [
        {"patients": referral.patient.split("/")[1]}
    ]
    assert scene.eligible(two_referrals) == [False, False]
    scene.refresh()  # the refresh agrees
    assert scene.eligible(two_referrals) == [False, False]
    # the referrals themselves go on: only secondary use was withdrawn
    assert referral_row(scene.session_factory, referral.task_id).status == "requested"

    scene.change(referral.consent, secondary_use("permit"))
    assert scene.eligible(two_referrals) == [False, False]  # until the job runs
    assert scene.refresh() == 1
    assert scene.eligible(two_referrals) == [True, True]


def test_withdrawing_the_whole_consent_excludes_at_once(
    scene: Scene, referral: Referral, two_referrals: list[str]
) -> None:
    scene.change(referral.consent, inactive)
    assert scene.eligible(two_referrals) == [False, False]
    scene.refresh()
    assert scene.eligible(two_referrals) == [False, False]
    assert referral_row(scene.session_factory, referral.task_id).status == "cancelled"


def test_the_national_data_opt_out_excludes_at_once_and_clearing_it_returns_by_the_job(
    scene: Scene, referral: Referral, two_referrals: list[str]
) -> None:
    scene.change(referral.patient, opted_out)
    assert scene.eligible(two_referrals) == [False, False]
    scene.refresh()
    assert scene.eligible(two_referrals) == [False, False]

    scene.change(referral.patient, opt_out_cleared)
    assert scene.eligible(two_referrals) == [False, False]
    scene.refresh()
    assert scene.eligible(two_referrals) == [True, True]


def test_another_patients_rows_are_left_alone(scene: Scene, referral: Referral) -> None:
    other = scene.refer(nhs_number="9000000009", referral_id="REF-0009")
    scene.refresh()
    scene.change(referral.consent, inactive)
    assert scene.eligible([referral.task_id, other.task_id]) == [False, True]
