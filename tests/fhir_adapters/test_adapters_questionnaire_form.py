"""questionnaire_form: the published instruments as form items, and answers as a response that
intake's own checks score or refuse item by item."""

from __future__ import annotations

import pytest

from fhir_adapters.outcome import FhirError
from fhir_adapters.parse import validate_resource
from fhir_adapters.questionnaire_form import (
    form_items,
    item_of,
    questionnaire_choices,
    questionnaire_response,
)
from fhir_adapters.questionnaires import INSTRUMENTS, questionnaire_for
from fhir_adapters.wellbeing import check_envelope, read_answers, score_answers

WHO = {
    "patient_ref": "Patient/p-1",
    "based_on_ref": "ServiceRequest/filler-1",
    "authored": "2026-03-02T10:00:00Z",
}


def test_every_published_instrument_is_a_form() -> None:
    assert [qid for qid, _ in questionnaire_choices()] == ["swemwbs", "wemwbs", "ons4", "ucla3"]
    for qid, instrument in INSTRUMENTS.items():
        items = form_items(qid)
        assert [i.link_id for i in items] == list(instrument.link_ids)
        assert all(i.required for i in items)
        assert {(i.min_value, i.max_value) for i in items} == {(instrument.low, instrument.high)}
        values = [int(v) for v, _ in items[0].options]
        assert values == list(range(instrument.low, instrument.high + 1))


def test_warwick_items_show_numbers_and_the_scale_never_statements() -> None:
    items = form_items("swemwbs")

    assert [i.label for i in items] == [f"SWEMWBS item {n}" for n in range(1, 8)]
    assert items[0].options == (
        ("1", "1 - None of the time"),
        ("2", "2 - Rarely"),
        ("3", "3 - Some of the time"),
        ("4", "4 - Often"),
        ("5", "5 - All of the time"),
    )
    assert form_items("wemwbs")[13].label == "WEMWBS item 14"


def test_ons4_and_ucla3_labels() -> None:
    ons4 = form_items("ons4")
    assert ons4[3].label == "ONS4 anxiety yesterday"
    assert ons4[0].options[0] == ("0", "0 - Not at all")
    assert ons4[0].options[5] == ("5", "5")
    assert ons4[0].options[10] == ("10", "10 - Completely")
    assert [o for _, o in form_items("ucla3")[0].options] == [
        "1 - Hardly ever",
        "2 - Some of the time",
        "3 - Often",
    ]


def test_an_answered_form_is_a_response_intake_scores() -> None:
    answers = {str(n): a for n, a in enumerate(["2", "2", "3", " 2", "2", "3", "2"], 1)}
    qr = questionnaire_response("swemwbs", answers, **WHO)

    validate_resource(qr, expected_type="QuestionnaireResponse")
    assert questionnaire_for(qr["questionnaire"]) == "swemwbs"
    assert qr["status"] == "completed"
    assert qr["basedOn"] == [{"reference": "ServiceRequest/filler-1"}]
    assert check_envelope(qr).subject == "Patient/p-1"
    scored = score_answers("swemwbs", read_answers(qr, "swemwbs"))
    assert scored[0].value == 16.36  # raw 16 (DESIGN §7)
    assert all("text" not in item for item in qr["item"])


def refused_items(qr: dict[str, object], questionnaire_id: str) -> dict[str, str | None]:
    validate_resource(qr, expected_type="QuestionnaireResponse")
    with pytest.raises(FhirError) as caught:
        read_answers(qr, questionnaire_id)
    assert caught.value.status == 422
    return {
        item_of(issue.expression[0], qr) or "": issue.diagnostics for issue in caught.value.issues
    }


def test_missing_out_of_range_and_non_numeric_answers_are_named_by_item() -> None:
    answers = {"1": "", "2": "7", "3": "three", "4": "0", "5": "99999999999", "6": "4"}
    qr = questionnaire_response("swemwbs", answers, **WHO)

    found = refused_items(qr, "swemwbs")

    assert set(found) == {"1", "2", "3", "4", "5", "7"}
    assert "from 1 to 5" in found["2"]
    assert "needs an answer" in found["7"]


def test_a_form_with_nothing_answered_is_refused_for_every_item() -> None:
    qr = questionnaire_response("ucla3", {}, **WHO)
    assert "item" not in qr
    assert set(refused_items(qr, "ucla3")) == {"1", "2", "3"}


def test_item_of_other_expressions() -> None:
    qr = questionnaire_response("ons4", {"1": "5"}, **WHO)
    assert item_of("QuestionnaireResponse.item[0].answer[0].valueInteger", qr) == "1"
    assert item_of("QuestionnaireResponse.item[3].answer", qr) is None  # no such item
    assert item_of("QuestionnaireResponse.item.where(linkId='4')", qr) == "4"
    assert item_of("QuestionnaireResponse.subject", qr) is None
    assert item_of("QuestionnaireResponse.basedOn", qr) is None


def test_unknown_questionnaires_are_a_key_error() -> None:
    with pytest.raises(KeyError):
        form_items("phq9")
    with pytest.raises(KeyError):
        questionnaire_response("phq9", {}, **WHO)
