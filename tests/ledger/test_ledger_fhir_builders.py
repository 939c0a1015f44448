"""The ledger's FHIR builders produce valid R4 (fhir.resources R4B) with the codes SPIS documents."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.procedure import Procedure

from fhir_adapters import ledger
from fhir_adapters.codes import OFFER_CATEGORIES, SNOMED
from fhir_adapters.parse import validate_resource

MEMBER = ledger.ReferredMember("patient-1", "sr-1", "timebank-1")
ON = date(2026, 11, 20)


def test_enrolment_observation() -> None:
    body = ledger.enrolment_observation(MEMBER, datetime(2026, 11, 25, 9, 30, tzinfo=UTC))

    model = Observation.model_validate(body)
    validate_resource(body)

    assert model.status == "final"
    assert body["effectiveDateTime"] == "2026-11-25T09:30:00Z"
    categories = {(c["coding"][0]["system"], c["coding"][0]["code"]) for c in body["category"]}
    assert (ledger.US_CORE_CATEGORY_SYSTEM, "sdoh") in categories
    assert (ledger.OBSERVATION_CATEGORY_SYSTEM, "social-history") in categories
    assert (ledger.SDOHCC_TEMPORARY_CODES, "program-enrollment") in categories
    assert body["code"]["coding"][0]["code"] == "program-enrollment-status"
    assert body["valueCodeableConcept"]["coding"][0] == {
        "system": ledger.SDOHCC_TEMPORARY_CODES,
        "code": "enrolled",
        "display": "Enrolled",
    }
    assert body["basedOn"] == [{"reference": "ServiceRequest/sr-1"}]
    assert body["performer"] == [{"reference": "Organization/timebank-1"}]


@pytest.mark.parametrize("direction", list(ledger.Direction))
def test_exchange_procedure(direction: ledger.Direction) -> None:
    body = ledger.exchange_procedure(MEMBER, "walking-group", ON, direction)

    Procedure.model_validate(body)
    validate_resource(body)

    assert body["status"] == "completed"
    assert body["category"]["coding"][0] == {
        "system": SNOMED,
        "code": "410606002",
        "display": "Social service procedure",
    }
    assert body["code"]["coding"][0]["system"] == ledger.ACTIVITY_SYSTEM
    assert body["code"]["text"] == "Walking group"
    assert body["subject"] == {"reference": "Patient/patient-1"}
    assert body["performedPeriod"] == {"start": "2026-11-20", "end": "2026-11-20"}
    word = "gave" if direction is ledger.Direction.GIVEN else "received"
    assert word in body["note"][0]["text"]


@pytest.mark.parametrize("direction", list(ledger.Direction))
def test_hours_observation(direction: ledger.Direction) -> None:
    body = ledger.hours_observation(MEMBER, "proc-1", 90, ON, direction)

    Observation.model_validate(body)
    validate_resource(body)

    assert body["partOf"] == [{"reference": "Procedure/proc-1"}]
    assert body["code"]["coding"][0]["code"] == "time-credit-hours"
    assert body["valueQuantity"] == {
        "value": 90,
        "unit": "min",
        "system": "http://unitsofmeasure.org",
        "code": "min",
    }
    assert isinstance(body["valueQuantity"]["value"], int)
    assert body["component"][0]["valueCodeableConcept"]["coding"][0]["code"] == direction.value


def test_every_activity_validates() -> None:
    for activity in OFFER_CATEGORIES:
        validate_resource(ledger.exchange_procedure(MEMBER, activity, ON, ledger.Direction.GIVEN))


def test_activities_are_the_time_bank_directory_offers() -> None:
    from referral_service.timebanks.service import OFFERS

    assert set(OFFER_CATEGORIES) == set(OFFERS)


def test_a_reversed_exchange_is_entered_in_error_and_otherwise_unchanged() -> None:
    procedure = ledger.exchange_procedure(MEMBER, "gardening", ON, ledger.Direction.GIVEN)
    hours = ledger.hours_observation(MEMBER, "proc-1", 45, ON, ledger.Direction.GIVEN)

    for original in (procedure, hours):
        corrected = ledger.entered_in_error(original)
        assert corrected is not None
        validate_resource(corrected)
        assert corrected["status"] == "entered-in-error"
        assert corrected["note"][-1]["text"].startswith("Recorded in error")
        unchanged = {k: v for k, v in corrected.items() if k not in ("status", "note")}
        assert unchanged == {k: v for k, v in original.items() if k not in ("status", "note")}
        assert original["status"] != "entered-in-error"  # the input is not changed
        assert ledger.entered_in_error(corrected) is None  # nothing to do twice
    assert len(ledger.entered_in_error(procedure)["note"]) == 2  # type: ignore[index]
