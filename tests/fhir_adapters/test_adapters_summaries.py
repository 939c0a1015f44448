"""summaries: stored JSON as a page shows it, from the shapes SPIS itself writes, and from
resources with everything optional missing."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from fhir_adapters import codes, ledger, task, wellbeing
from fhir_adapters.questionnaire_form import questionnaire_response
from fhir_adapters.referral_form import ReferralForm, referral_bundle
from fhir_adapters.summaries import (
    Coded,
    TaskOutput,
    activity_summary,
    age_on,
    hours_part_of,
    id_of,
    in_error,
    person_summary,
    postcode_district,
    request_summary,
    score_summary,
    task_summary,
)
from fhir_adapters.views import broker_view

FORM = ReferralForm(
    practice_org_id="practice-1",
    referral_id="WEB-0001",
    nhs_number="9434765919",
    family_name="Okafor",
    given_name="Grace",
    birth_date="1948-03-12",
    postcode="se6 4ru",
    reason_text="Lonely since her husband died",
    share_referral=True,
    share_back=True,
    secondary_use=False,
    phone="020 7946 0123",
    email="grace@example.org",
    reason_code=codes.REASON_SOCIAL_ISOLATION,
    needs=("befriending",),
)
BUNDLE = referral_bundle(FORM, datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
MEMBER = ledger.ReferredMember("p-1", "sr-1", "tb-1")


def test_a_declined_time_bank_task() -> None:
    child = task.child_task(
        "Task/ref-1", "ServiceRequest/f-1", "Patient/p-1", "Organization/tb-1", "2026-03-02"
    )
    stored = {
        **task.declined(task.reminder_due(child, 5), "no-capacity"),
        "id": "t-1",
        "meta": {"versionId": "3", "lastUpdated": "2026-03-04T08:00:00Z"},
    }

    summary = task_summary(stored)

    assert (summary.id, summary.version_id, summary.status) == ("t-1", "3", "rejected")
    assert summary.last_modified == "2026-03-04T08:00:00Z"
    assert summary.authored_on == "2026-03-02"
    assert (summary.owner, summary.focus, summary.patient) == (
        "Organization/tb-1",
        "ServiceRequest/f-1",
        "Patient/p-1",
    )
    assert summary.requester == "Organization/spis"
    assert summary.part_of == ("Task/ref-1",)
    assert summary.status_reason == codes.DECLINE_REASONS["no-capacity"]
    assert summary.status_reason_code is not None
    assert summary.status_reason_code.code == "no-capacity"
    assert summary.business_status == ()


def test_a_completed_referral_task_with_outputs() -> None:
    referral = task.routed(
        task.referral_task(
            focus="ServiceRequest/sr-1",
            patient={"reference": "Patient/p-1"},
            requester={"reference": "Organization/practice-1"},
            owner={"reference": "Organization/spis"},
            authored_on="2026-03-02T09:30:00Z",
        ),
        "Catford Time Bank",
    )
    referral["output"] = [
        task.output("resulting-activity", "Procedure/pr-1"),
        task.output("additional-content", "Observation/o-1"),
        {"type": {"text": "no reference"}},
    ]

    summary = task_summary(referral)

    assert summary.business_status == (
        Coded(codes.BUSINESS_STATUS_SYSTEM, "routed", "Routed to Catford Time Bank"),
    )
    assert summary.outputs == (
        TaskOutput("resulting-activity", "Procedure/pr-1"),
        TaskOutput("additional-content", "Observation/o-1"),
    )
    assert summary.last_modified is None
    assert summary.version_id is None


def test_the_referral_request() -> None:
    sr = {**BUNDLE["entry"][2]["resource"], "id": "sr-1"}

    summary = request_summary(sr)

    assert (summary.id, summary.identifier, summary.status, summary.intent) == (
        "sr-1",
        "WEB-0001",
        "active",
        "order",
    )
    assert summary.authored_on == "2026-03-02T09:30:00Z"
    assert summary.requester == "Organization/practice-1"
    assert summary.reasons == (Coded(codes.SNOMED, "422650009", "Social isolation"),)
    assert summary.reason_texts == ("Lonely since her husband died",)
    assert summary.needs == (Coded(codes.OFFER_SYSTEM, "befriending", "Befriending"),)


def test_the_person_as_a_time_bank_sees_them() -> None:
    patient = {**BUNDLE["entry"][0]["resource"], "id": "p-1"}
    view = broker_view("Patient", patient)

    summary = person_summary(view, date(2026, 3, 11))

    assert summary.name == "Grace Okafor"
    assert (summary.family_name, summary.given_names) == ("Okafor", ("Grace",))
    assert (summary.birth_date, summary.age) == ("1948-03-12", 77)
    assert (summary.postcode, summary.postcode_district) == ("se6 4ru", "SE6")
    assert summary.phones == ("020 7946 0123",)
    assert summary.emails == ("grace@example.org",)
    assert summary.subsetted
    assert person_summary(view, date(2026, 3, 12)).age == 78
    assert not person_summary(patient, date(2026, 3, 12)).subsetted


def test_a_person_with_almost_nothing_recorded() -> None:
    summary = person_summary({"resourceType": "Patient"}, date(2026, 1, 1))
    assert summary.name is None
    assert summary.age is None
    assert summary.postcode_district is None
    assert summary.phones == ()
    assert summary.given_names == ()
    named = person_summary(
        {"name": [{"use": "old", "family": "Smith"}, {"text": "Grace O."}], "birthDate": "1948"},
        date(2026, 1, 1),
    )
    assert (named.name, named.birth_date, named.age) == ("Grace O.", "1948", None)


@pytest.mark.parametrize(
    ("birth", "age"),
    [("1948-03-12", 77), ("2000-02-29", 26), ("1948-02-30", None), ("1948-03", None)],
)
def test_age_on(birth: str, age: int | None) -> None:
    assert age_on(birth, date(2026, 3, 11)) == age


@pytest.mark.parametrize(
    ("postcode", "district"),
    [("SE6 4RU", "SE6"), ("se134ab", "SE13"), ("W1A 1AA", "W1A"), ("nowhere", None)],
)
def test_postcode_district(postcode: str, district: str | None) -> None:
    assert postcode_district(postcode) == district


def scores(questionnaire_id: str, answers: dict[str, str]) -> list[dict[str, object]]:
    qr = questionnaire_response(
        questionnaire_id,
        answers,
        patient_ref="Patient/p-1",
        based_on_ref="ServiceRequest/sr-1",
        authored="2026-03-02T10:00:00Z",
    )
    found = wellbeing.score_answers(questionnaire_id, wellbeing.read_answers(qr, questionnaire_id))
    return wellbeing.score_observations(
        "QuestionnaireResponse/qr-1", qr, "ServiceRequest/sr-1", found
    )


def test_score_summaries_for_each_instrument() -> None:
    [swemwbs] = scores("swemwbs", {str(n): "3" for n in range(1, 8)})
    summary = score_summary(swemwbs)
    assert (summary.instrument, summary.value, summary.raw_value) == ("swemwbs", 19.25, 21)
    assert summary.date == "2026-03-02T10:00:00Z"
    assert summary.response == "QuestionnaireResponse/qr-1"
    assert summary.label == "Short Warwick-Edinburgh Mental Well-being Scale score"

    [wemwbs] = scores("wemwbs", {str(n): "4" for n in range(1, 15)})
    assert (score_summary(wemwbs).instrument, score_summary(wemwbs).value) == ("wemwbs", 56)
    ons4 = scores("ons4", {"1": "7", "2": "8", "3": "6", "4": "2"})
    assert [(score_summary(o).instrument, score_summary(o).value) for o in ons4] == [
        ("ons4", 7),
        ("ons4", 8),
        ("ons4", 6),
        ("ons4", 2),
    ]
    [ucla3] = scores("ucla3", {"1": "2", "2": "3", "3": "1"})
    assert (score_summary(ucla3).instrument, score_summary(ucla3).value) == ("ucla3", 6)


def test_a_score_of_another_kind_still_shows() -> None:
    summary = score_summary({"code": {"text": "Something else"}, "valueQuantity": {"value": True}})
    assert (summary.instrument, summary.label, summary.value) == (None, "Something else", None)


@pytest.mark.parametrize("direction", list(ledger.Direction))
def test_an_activity_with_and_without_its_hours(direction: ledger.Direction) -> None:
    procedure = {
        **ledger.exchange_procedure(MEMBER, "walking-group", date(2026, 3, 5), direction),
        "id": "pr-1",
    }
    hours = ledger.hours_observation(MEMBER, "pr-1", 90, date(2026, 3, 5), direction)

    summary = activity_summary(procedure, hours)

    assert (summary.id, summary.activity, summary.activity_label) == (
        "pr-1",
        "walking-group",
        "Walking group",
    )
    assert (summary.date, summary.minutes, summary.direction) == (
        "2026-03-05",
        90,
        direction.value,
    )
    alone = activity_summary(procedure)
    assert (alone.minutes, alone.direction) == (None, direction.value)


def test_an_activity_with_nothing_optional() -> None:
    summary = activity_summary({"resourceType": "Procedure", "performedDateTime": "2026-03-05"})
    assert summary.date == "2026-03-05"
    assert summary.activity is None
    assert summary.direction is None
    assert summary.minutes is None


def test_id_of() -> None:
    assert id_of("Patient/p-1") == "p-1"
    assert id_of("https://spis.example.org/fhir/Task/t-1/_history/2") == "t-1"
    assert id_of("urn:uuid:1234") is None
    assert id_of(None) is None


def test_an_exchanges_hours_are_found_beside_its_procedure_and_a_reversal_is_in_error() -> None:
    direction = ledger.Direction.GIVEN
    procedure = ledger.exchange_procedure(MEMBER, "gardening", date(2026, 3, 5), direction)
    hours = ledger.hours_observation(MEMBER, "pr-1", 30, date(2026, 3, 5), direction)
    enrolled = ledger.enrolment_observation(MEMBER, datetime(2026, 3, 1, tzinfo=UTC))

    assert hours_part_of(hours) == "Procedure/pr-1"
    assert hours_part_of(enrolled) is None
    assert not in_error(procedure)
    reversed_procedure = ledger.entered_in_error(procedure)
    assert reversed_procedure is not None
    assert in_error(reversed_procedure)
