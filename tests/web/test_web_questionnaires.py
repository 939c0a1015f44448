"""Wellbeing questionnaires on the broker's pages (issue 9): the published Questionnaire as a form,
saved through the same intake and scoring as `POST /fhir/QuestionnaireResponse`, refused item by
item, and the scores shown on the member's statement under "Wellbeing"."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.questionnaire_form import form_items
from fhir_adapters.questionnaires import QUESTIONNAIRE_BASE
from referral_service.audit.models import AuditEvent
from referral_service.config import Settings
from referral_service.people.models import Role
from referral_service.store.models import StoredResource
from tests.fixtures.fhir import FHIR_JSON
from tests.fixtures.pages import field_error, notices, table
from tests.fixtures.systems import TestSystem
from tests.fixtures.web import csrf_token, signed_in
from tests.ledger.conftest import Routed, add_member, enrol, route

MEMBERS = "/broker/members"
ANSWERS = "2232232"  # SWEMWBS raw 16 → metric 16.36


@pytest.fixture
def routed(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    timebank: TestSystem,
) -> Routed:
    return route(client, session_factory, settings, practice, practice_headers, timebank.org_id)


@pytest.fixture
def grace(
    client: TestClient, timebank: TestSystem, timebank_headers: dict[str, str], routed: Routed
) -> str:
    """The referred person, enrolled as a member."""
    response = enrol(client, timebank_headers, timebank, routed.child_task_id, "Grace")
    assert response.status_code == 201, response.text
    member_id: str = response.json()["member"]["id"]
    return member_id


@pytest.fixture
def broker(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
) -> None:
    signed_in(client, settings, session_factory, timebank.org_id, Role.BROKER)


def questionnaire(member_id: str, questionnaire_id: str = "swemwbs") -> str:
    return f"{MEMBERS}/{member_id}/questionnaires/{questionnaire_id}"


def answer(client: TestClient, path: str, answers: dict[str, str]) -> Any:
    token = csrf_token(client.get(path).text)
    data = {"csrf_token": token, **{f"item-{k}": v for k, v in answers.items()}}
    return client.post(path, data=data, follow_redirects=False)


def by_item(digits: str) -> dict[str, str]:
    return {str(n): value for n, value in enumerate(digits, start=1)}


def stored(session_factory: sessionmaker[Session], rtype: str) -> int:
    with session_factory() as session:
        query = select(func.count()).select_from(StoredResource)
        return session.scalar(query.where(StoredResource.type == rtype)) or 0


def scores(
    client: TestClient, headers: dict[str, str], routed: Routed
) -> dict[str, dict[str, Any]]:
    """The score Observations on the referral, by the QuestionnaireResponse they came from."""
    found = client.get(
        f"/fhir/Observation?based-on={routed.referral.service_request}&category=survey",
        headers=headers,
    ).json()
    return {
        e["resource"]["derivedFrom"][0]["reference"]: e["resource"] for e in found.get("entry", [])
    }


def scored_part(observation: dict[str, Any]) -> dict[str, Any]:
    """What scoring decided, without what differs between two responses (ids, times, links)."""
    keep = ("status", "category", "code", "subject", "basedOn", "valueQuantity", "component")
    return {name: observation.get(name) for name in keep}


# --- the form ----------------------------------------------------------------------------------


@pytest.mark.parametrize("questionnaire_id", ["swemwbs", "wemwbs", "ons4", "ucla3"])
@pytest.mark.usefixtures("broker")
def test_each_published_questionnaire_is_a_form_of_radio_groups(
    client: TestClient, grace: str, questionnaire_id: str
) -> None:
    page = client.get(questionnaire(grace, questionnaire_id))

    assert page.status_code == 200
    items = form_items(questionnaire_id)
    assert page.text.count('<fieldset class="radios"') == len(items)
    for item in items:
        assert f'<legend class="field__label">{item.label}</legend>' in page.text
        for value, label in item.options:
            assert f'name="item-{item.link_id}" value="{value}"' in page.text
            assert f">{label}</label>" in page.text
    assert '<button class="button" type="submit">Save answers</button>' in page.text


@pytest.mark.usefixtures("broker")
def test_a_referred_members_statement_links_to_the_four_questionnaires(
    client: TestClient, grace: str, timebank: TestSystem, timebank_headers: dict[str, str]
) -> None:
    walk_in = add_member(client, timebank_headers, timebank, "Walk-in")

    page = client.get(f"{MEMBERS}/{grace}").text

    assert "Record wellbeing questionnaire" in page
    for questionnaire_id in ("swemwbs", "wemwbs", "ons4", "ucla3"):
        assert f'href="{questionnaire(grace, questionnaire_id)}"' in page
    assert '<h2 id="wellbeing">Wellbeing</h2>' in page
    assert "No wellbeing questionnaires recorded yet." in page
    other = client.get(f"{MEMBERS}/{walk_in}").text
    assert "Record wellbeing questionnaire" not in other
    assert "Wellbeing" not in other
    # Only a referral has the person and ServiceRequest a questionnaire is about.
    assert client.get(questionnaire(walk_in)).status_code == 404
    assert client.get(questionnaire(grace, "phq9")).status_code == 404


# --- saving answers: the same intake and scoring as over FHIR ----------------------------------


@pytest.mark.usefixtures("broker")
def test_answers_saved_on_the_form_score_exactly_as_over_fhir(
    client: TestClient,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    routed: Routed,
    grace: str,
) -> None:
    over_fhir = client.post(
        "/fhir/QuestionnaireResponse",
        json={
            "resourceType": "QuestionnaireResponse",
            "questionnaire": f"{QUESTIONNAIRE_BASE}/swemwbs|1",
            "status": "completed",
            "basedOn": [{"reference": f"ServiceRequest/{routed.filler_id}"}],
            "subject": {"reference": routed.referral.patient},
            "authored": "2026-11-01T10:00:00Z",
            "item": [
                {"linkId": k, "answer": [{"valueInteger": int(v)}]}
                for k, v in by_item(ANSWERS).items()
            ],
        },
        headers={**timebank_headers, **FHIR_JSON},
    )
    assert over_fhir.status_code == 201, over_fhir.text
    fhir_ref = "/".join(over_fhir.headers["location"].split("/")[-4:-2])

    saved = answer(client, questionnaire(grace), by_item(ANSWERS))

    assert (saved.status_code, saved.headers["location"]) == (
        303,
        f"{MEMBERS}/{grace}?notice=questionnaire-saved",
    )
    found = scores(client, timebank_headers, routed)
    [web_ref] = set(found) - {fhir_ref}
    web, fhir = found[web_ref], found[fhir_ref]
    assert scored_part(web) == scored_part(fhir)
    assert web["valueQuantity"]["value"] == 16.36
    assert web["component"][0]["valueQuantity"]["value"] == 16
    assert web["basedOn"] == [{"reference": routed.referral.service_request}]
    # The write is audited as /fhir audits a create: the response and its score, for the
    # practice's patient.
    with session_factory() as session:
        [written] = session.scalars(
            select(AuditEvent).where(
                AuditEvent.kind == "create", AuditEvent.entities.startswith(f"{web_ref} ")
            )
        ).all()
    [_, score_ref] = written.entities.split()
    assert score_ref == f"Observation/{web['id']}"
    assert (written.action, written.patient_id) == ("C", routed.patient_id)
    assert written.actor_org_id == timebank.org_id

    page = client.get(saved.headers["location"]).text
    assert notices(page) == ["Questionnaire saved. The scores are under Wellbeing."]
    [header, row] = table(page, "Wellbeing scores")
    assert header == ["Score", "First", "Latest", "Change", "Times recorded"]
    assert row[1:] == ["16.36 (raw 16) 1 November 2026", row[2], "0", "2"]
    assert row[2].startswith("16.36 (raw 16) ")


@pytest.mark.usefixtures("broker")
def test_the_statement_shows_the_change_from_first_to_latest(
    client: TestClient, session_factory: sessionmaker[Session], grace: str
) -> None:
    assert answer(client, questionnaire(grace), by_item(ANSWERS)).status_code == 303
    assert answer(client, questionnaire(grace), by_item("4444444")).status_code == 303  # 25.03
    assert answer(client, questionnaire(grace, "ucla3"), by_item("332")).status_code == 303

    page = client.get(f"{MEMBERS}/{grace}").text

    rows = {row[0]: row[1:] for row in table(page, "Wellbeing scores")[1:]}
    [swemwbs] = [values for label, values in rows.items() if "16.36" in values[0]]
    assert swemwbs[0].startswith("16.36 (raw 16)")
    assert swemwbs[1].startswith("25.03 (raw 28)")
    assert swemwbs[2:] == ["+8.67", "2"]
    assert any(values[0].startswith("8 ") and values[2:] == ["–", "1"] for values in rows.values())
    with session_factory() as session:
        searched = session.scalars(
            select(AuditEvent).where(AuditEvent.kind == "search", AuditEvent.action == "E")
        ).all()
    assert any("Observation/" in event.entities for event in searched)


# --- refusals, item by item ----------------------------------------------------------------------


@pytest.mark.usefixtures("broker")
def test_a_missing_item_and_an_out_of_range_answer_are_shown_on_their_items(
    client: TestClient, session_factory: sessionmaker[Session], grace: str
) -> None:
    answers = by_item(ANSWERS)
    answers["2"] = "6"
    del answers["3"]

    refused = answer(client, questionnaire(grace), answers)

    assert refused.status_code == 422
    assert (
        field_error(refused.text, "item-2") == "Choose one answer for SWEMWBS item 2, from 1 to 5"
    )
    assert field_error(refused.text, "item-3") == "Choose an answer for SWEMWBS item 3"
    for n in (1, 4, 5, 6, 7):
        assert field_error(refused.text, f"item-{n}") is None
    assert '<a href="#item-2">' in refused.text
    assert '<a href="#item-3">' in refused.text
    assert 'id="item-1-2" name="item-1" value="2" checked' in refused.text  # kept as chosen
    assert stored(session_factory, "QuestionnaireResponse") == 0
    assert client.get(f"{MEMBERS}/{grace}").text.count("No wellbeing questionnaires") == 1
    with session_factory() as session:
        [failure] = session.scalars(select(AuditEvent).where(AuditEvent.outcome == 4)).all()
    assert (failure.kind, failure.detail) == ("create", "422 value")


@pytest.mark.usefixtures("broker")
def test_answers_without_the_forms_token_are_not_saved(
    client: TestClient, session_factory: sessionmaker[Session], grace: str
) -> None:
    data = {f"item-{k}": v for k, v in by_item(ANSWERS).items()}

    refused = client.post(questionnaire(grace), data=data, follow_redirects=False)

    assert refused.status_code == 403
    assert stored(session_factory, "QuestionnaireResponse") == 0
    assert stored(session_factory, "Observation") == 1  # the enrolment Observation only
