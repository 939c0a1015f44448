"""The web forms' FHIR through the real intake (PostgreSQL): what the builders make is accepted,
and intake's refusals of bad input map back to the form field or questionnaire item.

Each call goes the way `POST /fhir` (and `PUT /fhir/Task/<id>`) goes: validate, then
`referrals.service.submit`, in one unit of work the test commits or rolls back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters import task
from fhir_adapters.outcome import FhirError
from fhir_adapters.parse import validate_resource
from fhir_adapters.questionnaire_form import item_of, questionnaire_response
from fhir_adapters.referral import needs
from fhir_adapters.referral_form import ReferralForm, form_field_of, referral_bundle
from fhir_adapters.summaries import person_summary, score_summary, task_summary
from referral_service.config import Settings
from referral_service.consent.rules import Purpose
from referral_service.consent.service import decide
from referral_service.context import Context
from referral_service.errors import ServiceError
from referral_service.fhir.bundles import entries_of
from referral_service.principal import Principal
from referral_service.referrals import service as referrals
from referral_service.referrals.service import Entry, Outcome
from referral_service.store import service as resources
from tests.fixtures.referrals import Referral
from tests.fixtures.routing import route_now
from tests.fixtures.systems import TestSystem, bearer

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def form_for(practice: TestSystem, **changes: Any) -> ReferralForm:
    form = ReferralForm(
        practice_org_id=practice.org_id,
        referral_id="WEB-0001",
        nhs_number="9434765919",
        family_name="Okafor",
        given_name="Grace",
        birth_date="1948-03-12",
        postcode="SE6 4RU",
        reason_text="Lonely since her husband died",
        share_referral=True,
        share_back=True,
        secondary_use=False,
        needs=("befriending",),
    )
    return replace(form, **changes)


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as db:
        yield db
        db.rollback()


def as_system(session: Session, settings: Settings, system: TestSystem) -> Context:
    principal = Principal(system.client_id, system.org_id, system.kind, frozenset())
    return Context(session, principal, settings)


def submit_bundle(ctx: Context, bundle: dict[str, Any]) -> list[Outcome]:
    validate_resource(bundle, expected_type="Bundle")
    return referrals.submit(ctx, entries_of(bundle))


def submit_one(ctx: Context, entry: Entry) -> Outcome:
    validate_resource(entry.resource, expected_type=entry.rtype)
    [outcome] = referrals.submit(ctx, [entry])
    return outcome


def expressions(error: ServiceError | FhirError) -> list[str]:
    if isinstance(error, FhirError):
        return [e for issue in error.issues for e in issue.expression]
    return list(error.expression or [])


def refused(call: Any, *args: Any) -> ServiceError | FhirError:
    with pytest.raises((ServiceError, FhirError)) as caught:
        call(*args)
    error = caught.value
    assert isinstance(error, ServiceError | FhirError)
    return error


# --- the referral form ---------------------------------------------------------------------------


def test_a_referral_made_on_the_form_is_taken_like_a_gp_systems(
    session: Session, settings: Settings, practice: TestSystem
) -> None:
    ctx = as_system(session, settings, practice)
    bundle = referral_bundle(form_for(practice), NOW)

    outcomes = submit_bundle(ctx, bundle)

    assert [(o.version.type, o.created) for o in outcomes] == [
        ("Patient", True),
        ("Consent", True),
        ("ServiceRequest", True),
    ]
    assert outcomes[2].note is not None
    assert "Task" in outcomes[2].note
    patient, _, sr = (f"{o.version.type}/{o.version.id}" for o in outcomes)
    stored = resources.load_json(ctx, "ServiceRequest", outcomes[2].version.id)
    assert stored is not None
    assert needs(stored) == {"befriending"}
    assert stored["subject"] == {"reference": patient}
    stored_patient = resources.load_json(ctx, "Patient", outcomes[0].version.id)
    assert stored_patient is not None
    assert person_summary(stored_patient, date(2026, 3, 2)).name == "Grace Okafor"
    permitted = {
        p: decide(ctx, practice.org_id, patient, p).permitted
        for p in (Purpose.REFERRAL, Purpose.SHARE_BACK, Purpose.SECONDARY_USE)
    }
    assert permitted == {
        Purpose.REFERRAL: True,
        Purpose.SHARE_BACK: True,
        Purpose.SECONDARY_USE: False,
    }
    session.flush()
    # Sent again (a double click): the first answer, nothing new.
    again = submit_bundle(ctx, referral_bundle(form_for(practice), NOW))
    assert [(o.version.id, o.created) for o in again] == [(o.version.id, False) for o in outcomes]
    assert sr.endswith(again[2].version.id)


def test_an_identifier_with_search_syntax_in_it_is_taken(
    session: Session, settings: Settings, practice: TestSystem
) -> None:
    ctx = as_system(session, settings, practice)
    form = form_for(practice, referral_id="WEB/2026,03|7 & more")

    outcomes = submit_bundle(ctx, referral_bundle(form, NOW))

    assert [o.created for o in outcomes] == [True, True, True]


@pytest.mark.parametrize(
    ("changes", "field", "status"),
    [
        ({"nhs_number": "9434765918"}, "nhs_number", 422),  # fails Modulus 11
        ({"nhs_number": "94347"}, "nhs_number", 422),
        ({"nhs_number": ""}, "nhs_number", 422),
        ({"birth_date": "12/03/1948"}, "birth_date", 400),
        ({"birth_date": "1948-02-30"}, "birth_date", 400),
        ({"share_referral": False}, "share_referral", 422),
    ],
)
def test_refusals_name_the_form_field(
    session: Session,
    settings: Settings,
    practice: TestSystem,
    changes: dict[str, Any],
    field: str,
    status: int,
) -> None:
    ctx = as_system(session, settings, practice)
    bundle = referral_bundle(form_for(practice, **changes), NOW)

    error = refused(submit_bundle, ctx, bundle)

    assert error.status == status
    assert {form_field_of(e) for e in expressions(error)} == {field}


# --- a time bank's side: questionnaires and decisions --------------------------------------------


@pytest.fixture
def child(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    referral: Referral,
    timebank_a: TestSystem,
) -> dict[str, Any]:
    """The time bank Task routing made for the sample referral, as the time bank reads it."""
    child_id = route_now(session_factory, settings, referral.task_id)
    assert child_id is not None
    found: dict[str, Any] = client.get(
        f"/fhir/Task/{child_id}", headers=bearer(client, timebank_a)
    ).json()
    return found


def answers_for(child: dict[str, Any], answers: dict[str, str]) -> dict[str, Any]:
    return questionnaire_response(
        "swemwbs",
        answers,
        patient_ref=child["for"]["reference"],
        based_on_ref=child["focus"]["reference"],  # the filler order the time bank holds
        authored="2026-03-09T10:00:00Z",
    )


def test_a_questionnaire_form_is_scored_for_the_gp(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice_headers: dict[str, str],
    referral: Referral,
    timebank_a: TestSystem,
    child: dict[str, Any],
) -> None:
    qr = answers_for(child, {str(n): a for n, a in enumerate("2232232", 1)})
    with session_factory() as db, db.begin():
        outcome = submit_one(
            as_system(db, settings, timebank_a), Entry("POST", "QuestionnaireResponse", qr)
        )
    assert outcome.created

    found = client.get(
        f"/fhir/Observation?based-on={referral.service_request}", headers=practice_headers
    ).json()
    shown = [score_summary(e["resource"]) for e in found["entry"]]
    assert [(s.instrument, s.value, s.raw_value) for s in shown] == [("swemwbs", 16.36, 16)]
    assert shown[0].response == f"QuestionnaireResponse/{outcome.version.id}"


def test_bad_answers_are_refused_by_item(
    session: Session, settings: Settings, timebank_a: TestSystem, child: dict[str, Any]
) -> None:
    ctx = as_system(session, settings, timebank_a)
    qr = answers_for(child, {"1": "4", "2": "6", "3": "often", "5": "0", "6": "3", "7": "3"})

    error = refused(submit_one, ctx, Entry("POST", "QuestionnaireResponse", qr))

    assert error.status == 422
    assert sorted(item_of(e, qr) or "" for e in expressions(error)) == ["2", "3", "4", "5"]


def put_task(ctx: Context, current: dict[str, Any], changed: dict[str, Any]) -> Outcome:
    version = current["meta"]["versionId"]
    entry = Entry("PUT", "Task", changed, rid=current["id"], if_match=f'W/"{version}"')
    return submit_one(ctx, entry)


def test_broker_decisions_go_through_intake(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice_headers: dict[str, str],
    referral: Referral,
    timebank_a: TestSystem,
    child: dict[str, Any],
) -> None:
    with session_factory() as db:
        ctx = as_system(db, settings, timebank_a)
        bare = refused(put_task, ctx, child, task.declined(child, "other", " "))
        assert {task.decision_field_of(e) for e in expressions(bare)} == {"reason"}
        db.rollback()
        jumped = refused(put_task, ctx, child, task.completed(child))
        assert {task.decision_field_of(e) for e in expressions(jumped)} == {"status"}
        db.rollback()

    with session_factory() as db, db.begin():
        put_task(as_system(db, settings, timebank_a), child, task.accepted(child))
    headers = bearer(client, timebank_a)
    accepted = client.get(f"/fhir/Task/{child['id']}", headers=headers).json()
    with session_factory() as db:
        blank = refused(
            put_task, as_system(db, settings, timebank_a), accepted, task.on_hold(accepted, "")
        )
        assert {task.decision_field_of(e) for e in expressions(blank)} == {"reason"}
        db.rollback()
    with session_factory() as db, db.begin():
        reason = "In hospital for a fortnight"
        put_task(as_system(db, settings, timebank_a), accepted, task.on_hold(accepted, reason))

    held = task_summary(client.get(f"/fhir/Task/{child['id']}", headers=headers).json())
    assert (held.status, held.status_reason, held.version_id) == ("on-hold", reason, "3")
    referral_task = task_summary(
        client.get(f"/fhir/{referral.task}", headers=practice_headers).json()
    )
    assert (referral_task.status, referral_task.status_reason) == (
        "on-hold",
        f"Time bank: {reason}",
    )


def test_a_decline_reaches_the_gp_in_words(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice_headers: dict[str, str],
    referral: Referral,
    timebank_a: TestSystem,
    child: dict[str, Any],
) -> None:
    declined = task.declined(child, "no-capacity", "Full until the spring")
    with session_factory() as db, db.begin():
        put_task(as_system(db, settings, timebank_a), child, declined)
    # No other time bank: routing gives the referral back with the time bank's words in it.
    assert route_now(session_factory, settings, referral.task_id) is None

    referral_task = task_summary(
        client.get(f"/fhir/{referral.task}", headers=practice_headers).json()
    )
    assert referral_task.status == "rejected"
    assert referral_task.status_reason is not None
    assert "no room for new members at the moment: Full until the spring" in (
        referral_task.status_reason
    )
