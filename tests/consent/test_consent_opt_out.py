"""The national data opt-out as a practice records it (issue 7 item 11, docs/api.md "Consent"):
an extension on the Patient. It withholds secondary use whatever the Consent says, leaves the
referral and share-back alone, and a time bank never sees it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.consent.rules import NATIONAL_OPT_OUT, Purpose
from referral_service.consent.service import decide
from referral_service.routing.service import system_context
from tests.fixtures.fhir import FHIR_JSON, referral_bundle
from tests.fixtures.referrals import Referral, make_referral
from tests.fixtures.routing import add_timebank, route_now
from tests.fixtures.systems import TestSystem, bearer

# Exactly the example in docs/api.md.
OPT_OUT = {"url": "https://spis.example.org/fhir/StructureDefinition/national-data-opt-out",
           "valueBoolean": True}  # fmt: skip


def decisions(
    session_factory: sessionmaker[Session], settings: Settings, practice: str, patient: str
) -> dict[Purpose, tuple[bool, str]]:
    with session_factory() as session:
        ctx = system_context(session, settings)
        found = {p: decide(ctx, practice, patient, p) for p in Purpose}
    return {p: (d.permitted, d.reason) for p, d in found.items()}


def test_the_documented_url_is_the_one_spis_reads() -> None:
    assert OPT_OUT["url"] == NATIONAL_OPT_OUT


def test_an_opted_out_patient_is_referred_but_kept_out_of_secondary_use(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    timebank = add_timebank(session_factory, "Catford Time Bank", ["SE6"], ["befriending"], 2)
    bundle = referral_bundle(practice.org_id)
    bundle["entry"][0]["resource"]["extension"] = [OPT_OUT]
    response = client.post("/fhir", json=bundle, headers={**practice_headers, **FHIR_JSON})
    assert response.status_code == 200, response.text
    patient = "/".join(response.json()["entry"][0]["response"]["location"].split("/")[:2])

    assert decisions(session_factory, settings, practice.org_id, patient) == {
        Purpose.REFERRAL: (True, "permitted"),
        Purpose.SHARE_BACK: (True, "permitted"),
        Purpose.SECONDARY_USE: (False, "national data opt-out"),
    }
    stored = client.get(f"/fhir/{patient}", headers=practice_headers).json()
    assert stored["extension"] == [OPT_OUT]
    # routed as usual; the broker's view of the Patient does not carry the flag
    tasks = client.get(f"/fhir/Task?patient={patient}", headers=practice_headers).json()
    assert route_now(session_factory, settings, tasks["entry"][0]["resource"]["id"]) is not None
    seen = client.get(f"/fhir/{patient}", headers=bearer(client, timebank)).json()
    assert "extension" not in seen


@pytest.mark.parametrize(("flag", "permitted"), [(True, False), (False, True)])
def test_setting_or_clearing_the_opt_out_on_the_patient(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    flag: bool,
    permitted: bool,
) -> None:
    referral: Referral = make_referral(client, practice_headers, practice.org_id)
    assert decisions(session_factory, settings, practice.org_id, referral.patient)[
        Purpose.SECONDARY_USE
    ] == (True, "permitted")
    patient = client.get(f"/fhir/{referral.patient}", headers=practice_headers).json()
    patient["extension"] = [{**OPT_OUT, "valueBoolean": flag}]
    response = client.put(
        f"/fhir/{referral.patient}", json=patient, headers={**practice_headers, **FHIR_JSON}
    )
    assert response.status_code == 200, response.text

    found = decisions(session_factory, settings, practice.org_id, referral.patient)
    assert found[Purpose.SECONDARY_USE][0] is permitted
    assert found[Purpose.REFERRAL] == (True, "permitted")
