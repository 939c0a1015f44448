"""check_response / observations_for on PostgreSQL, against a referral a practice really made."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.outcome import FhirError
from fhir_adapters.parse import validate_resource
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.errors import ServiceError
from referral_service.principal import Principal
from referral_service.store import service as resources
from referral_service.wellbeing.service import check_response, observations_for, referral_owner
from tests.fixtures.referrals import Referral
from tests.fixtures.systems import TestSystem

SWEMWBS = "https://spis.example.org/fhir/Questionnaire/swemwbs|1"


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as db:
        yield db
        db.rollback()


def context(session: Session, settings: Settings, system: TestSystem) -> Context:
    principal = Principal(
        client_id=system.client_id,
        org_id=system.org_id,
        org_kind=system.kind,
        scopes=frozenset(),
    )
    return Context(session, principal, settings)


def response(referral: Referral, based_on: str | None = None, **fields: Any) -> dict[str, Any]:
    qr: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": SWEMWBS,
        "status": "completed",
        "basedOn": [{"reference": based_on or referral.service_request}],
        "subject": {"reference": referral.patient},
        "authored": "2026-11-20T10:00:00Z",
        "item": [{"linkId": str(n), "answer": [{"valueInteger": 4}]} for n in range(1, 8)],
    }
    qr.update(fields)
    return qr


def refused(ctx: Context, qr: dict[str, Any]) -> ServiceError | FhirError:
    with pytest.raises((ServiceError, FhirError)) as caught:
        check_response(ctx, qr)
    error = caught.value
    assert isinstance(error, ServiceError | FhirError)
    assert error.status == 422
    return error


def issue_code(error: ServiceError | FhirError) -> str:
    return error.issue_code if isinstance(error, ServiceError) else error.code


def filler_order(ctx: Context, referral: Referral, share_with: tuple[str, ...] = ()) -> str:
    """What routing will create for the chosen time bank (DESIGN §3 step 2)."""
    sr = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "filler-order",
        "basedOn": [{"reference": referral.service_request}],
        "subject": {"reference": referral.patient},
    }
    version = resources.create(ctx, "ServiceRequest", sr, share_with=share_with)
    return f"ServiceRequest/{version.id}"


def test_a_response_on_the_referral_is_scored_into_observations(
    session: Session, settings: Settings, practice: TestSystem, referral: Referral
) -> None:
    ctx = context(session, settings, practice)

    scored = check_response(ctx, response(referral))

    assert scored.questionnaire == "swemwbs"
    assert str(scored.referral) == str(scored.named) == referral.service_request
    assert referral_owner(ctx, scored) == practice.org_id
    [obs] = observations_for(scored, "QuestionnaireResponse/qr1")
    validate_resource(obs, expected_type="Observation")
    assert obs["valueQuantity"]["value"] == 25.03  # raw 28
    assert obs["basedOn"] == [{"reference": referral.service_request}]
    assert obs["derivedFrom"] == [{"reference": "QuestionnaireResponse/qr1"}]
    assert obs["subject"] == {"reference": referral.patient}
    assert not session.new
    assert not session.dirty


def test_a_reference_under_our_base_url_is_the_same_referral(
    session: Session, settings: Settings, practice: TestSystem, referral: Referral
) -> None:
    ctx = context(session, settings, practice)
    absolute = f"{settings.fhir_base_url}/{referral.service_request}"

    scored = check_response(ctx, response(referral, based_on=absolute))

    assert str(scored.referral) == referral.service_request


def test_a_filler_order_resolves_to_the_original_referral(
    session: Session,
    settings: Settings,
    practice: TestSystem,
    timebank: TestSystem,
    referral: Referral,
) -> None:
    filler = filler_order(context(session, settings, practice), referral, (timebank.org_id,))
    # The time bank can read the filler-order but not the practice's original referral.
    ctx = context(session, settings, timebank)
    referral_id = referral.service_request.partition("/")[2]
    assert resources.load_json(ctx, "ServiceRequest", referral_id) is None

    scored = check_response(ctx, response(referral, based_on=filler))

    assert str(scored.referral) == referral.service_request
    assert str(scored.named) == filler
    [obs] = observations_for(scored, "QuestionnaireResponse/qr1")
    assert obs["basedOn"] == [{"reference": referral.service_request}]
    assert referral_owner(ctx, scored) == practice.org_id  # the GP's, not the time bank's


def test_naming_both_the_filler_order_and_the_original_is_one_referral(
    session: Session, settings: Settings, practice: TestSystem, referral: Referral
) -> None:
    ctx = context(session, settings, practice)
    qr = response(referral)
    qr["basedOn"].append({"reference": filler_order(ctx, referral)})

    assert str(check_response(ctx, qr).referral) == referral.service_request


def test_a_referral_the_caller_cannot_see_is_not_found(
    session: Session, settings: Settings, practice_b: TestSystem, referral: Referral
) -> None:
    err = refused(context(session, settings, practice_b), response(referral))
    assert issue_code(err) == "not-found"
    assert err.expression == ["QuestionnaireResponse.basedOn"]


def test_a_referral_that_does_not_exist_is_not_found(
    session: Session, settings: Settings, practice: TestSystem, referral: Referral
) -> None:
    qr = response(referral, based_on="ServiceRequest/00000000-0000-0000-0000-000000000000")
    assert issue_code(refused(context(session, settings, practice), qr)) == "not-found"


@pytest.mark.parametrize(
    "based_on",
    [
        None,
        [],
        [{"reference": "CarePlan/c1"}],
        [{"reference": "https://elsewhere.example/fhir/ServiceRequest/1"}],
    ],
)
def test_a_response_must_be_based_on_a_referral(
    session: Session, settings: Settings, practice: TestSystem, referral: Referral, based_on: Any
) -> None:
    qr = response(referral)
    qr["basedOn"] = based_on
    err = refused(context(session, settings, practice), qr)
    assert issue_code(err) == "required"


def test_the_response_must_be_about_the_referrals_patient(
    session: Session, settings: Settings, practice: TestSystem, referral: Referral
) -> None:
    qr = response(referral, subject={"reference": "Patient/someone-else"})
    err = refused(context(session, settings, practice), qr)
    assert issue_code(err) == "business-rule"
    assert err.expression == ["QuestionnaireResponse.subject"]


@pytest.mark.parametrize(
    "questionnaire",
    [
        "http://loinc.org/q/44249-1",
        "https://spis.example.org/fhir/Questionnaire/swemwbs|7",
        None,
    ],
)
def test_an_unknown_questionnaire_is_not_supported(
    session: Session,
    settings: Settings,
    practice: TestSystem,
    referral: Referral,
    questionnaire: str | None,
) -> None:
    qr = response(referral, questionnaire=questionnaire)
    err = refused(context(session, settings, practice), qr)
    assert issue_code(err) == "not-supported"
    assert "https://spis.example.org/fhir/Questionnaire/ucla3|1" in str(err)
    assert "loinc" not in str(err)


def test_answers_are_checked_before_the_referral(
    session: Session, settings: Settings, practice: TestSystem, referral: Referral
) -> None:
    qr = response(referral, based_on="ServiceRequest/unknown")
    qr["item"][3]["answer"][0]["valueInteger"] = 8
    err = refused(context(session, settings, practice), qr)
    assert isinstance(err, FhirError)
    assert "linkId '4'" in err.diagnostics


def test_intake_can_pass_its_own_lookup_for_a_referral_in_the_same_bundle(
    session: Session, settings: Settings, practice: TestSystem, referral: Referral
) -> None:
    pending = {
        "ServiceRequest/new-sr": {"intent": "order", "subject": {"reference": referral.patient}}
    }
    ctx = context(session, settings, practice)

    scored = check_response(
        ctx, response(referral, based_on="ServiceRequest/new-sr"), lookup=pending.get
    )

    assert str(scored.referral) == "ServiceRequest/new-sr"
    assert referral_owner(ctx, scored) == practice.org_id  # not stored yet: the caller's
