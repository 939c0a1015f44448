"""Score Observations: DESIGN §7 shape, valid R4B, and what a response must carry for them."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.observation import Observation

from fhir_adapters.outcome import FhirError
from fhir_adapters.parse import validate_resource
from fhir_adapters.wellbeing import (
    check_envelope,
    read_answers,
    score_answers,
    score_observations,
)

BASE = "https://spis.example.org/fhir/Questionnaire"
ANSWERS = {
    "swemwbs": [3, 4, 3, 4, 3, 4, 5],
    "wemwbs": [3] * 14,
    "ons4": [7, 8, 6, 2],
    "ucla3": [1, 2, 2],
}
SURVEY = {
    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
    "code": "survey",
}


def response(qid: str, **fields: Any) -> dict[str, Any]:
    qr: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{BASE}/{qid}|1",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "authored": "2026-11-20T10:00:00+00:00",
        "item": [
            {"linkId": str(n), "answer": [{"valueInteger": value}]}
            for n, value in enumerate(ANSWERS[qid], start=1)
        ],
    }
    qr.update(fields)
    return qr


def observations(qid: str, based_on: str | None = "ServiceRequest/sr1") -> list[dict[str, Any]]:
    qr = response(qid)
    scores = score_answers(qid, read_answers(qr, qid))
    return score_observations("QuestionnaireResponse/qr1", qr, based_on, scores)


@pytest.mark.parametrize("qid", sorted(ANSWERS))
def test_every_observation_is_valid_r4b(qid: str) -> None:
    for obs in observations(qid):
        Observation.model_validate(obs)
        assert validate_resource(obs, expected_type="Observation") == "Observation"


@pytest.mark.parametrize("qid", sorted(ANSWERS))
def test_observation_shape_follows_design_7(qid: str) -> None:
    for obs in observations(qid):
        assert obs["status"] == "final"
        assert obs["category"][0]["coding"][0]["system"] == SURVEY["system"]
        assert obs["category"][0]["coding"][0]["code"] == SURVEY["code"]
        assert obs["subject"] == {"reference": "Patient/p1"}
        assert obs["effectiveDateTime"] == "2026-11-20T10:00:00+00:00"
        quantity = obs["valueQuantity"]
        assert quantity["system"] == "http://unitsofmeasure.org"
        assert quantity["code"] == quantity["unit"] == "{score}"
        assert obs["derivedFrom"] == [{"reference": "QuestionnaireResponse/qr1"}]
        assert obs["basedOn"] == [{"reference": "ServiceRequest/sr1"}]
        assert "id" not in obs


def test_swemwbs_metric_is_the_value_and_raw_a_component() -> None:
    [obs] = observations("swemwbs")  # raw 26
    assert obs["code"]["coding"][0]["code"] == "718466001"
    assert obs["valueQuantity"]["value"] == 23.21
    [component] = obs["component"]
    assert component["code"]["coding"][0]["code"] == "swemwbs-raw"
    assert component["valueQuantity"]["value"] == 26


def test_ons4_gives_four_observations() -> None:
    found = {
        o["code"]["coding"][0]["code"]: o["valueQuantity"]["value"] for o in observations("ons4")
    }
    assert found == {
        "ons4-life-satisfaction": 7,
        "ons4-worthwhile": 8,
        "ons4-happiness": 6,
        "ons4-anxiety": 2,
    }


def test_based_on_is_left_out_when_not_given() -> None:
    assert all("basedOn" not in obs for obs in observations("ucla3", based_on=None))


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"subject": None}, "QuestionnaireResponse.subject"),
        ({"subject": {"reference": "Group/g1"}}, "QuestionnaireResponse.subject"),
        ({"subject": {"display": "someone"}}, "QuestionnaireResponse.subject"),
        ({"authored": None}, "QuestionnaireResponse.authored"),
    ],
)
def test_a_response_needs_a_patient_and_a_date(fields: dict[str, Any], where: str) -> None:
    qr = {k: v for k, v in response("ucla3", **fields).items() if v is not None}
    with pytest.raises(FhirError) as caught:
        check_envelope(qr)
    assert (caught.value.status, caught.value.code) == (422, "required")
    assert caught.value.expression == [where]
