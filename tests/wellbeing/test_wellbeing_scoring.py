"""Reading answers, scoring every instrument, refusals, meaningful change (DESIGN §7)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_adapters import codes
from fhir_adapters.outcome import FhirError
from fhir_adapters.wellbeing import (
    MEANINGFUL_CHANGE,
    SWEMWBS_METRIC,
    WELLBEING_SYSTEM,
    Score,
    meaningful_change,
    read_answers,
    score_answers,
    swemwbs_metric,
)

BASE = "https://spis.example.org/fhir/Questionnaire"

# DESIGN §7, written out again rather than imported, so a typo in the code cannot pass.
WARWICK = {
    7: 7.00, 8: 9.51, 9: 11.25, 10: 12.40, 11: 13.33, 12: 14.08, 13: 14.75, 14: 15.32, 15: 15.84,
    16: 16.36, 17: 16.88, 18: 17.43, 19: 17.98, 20: 18.59, 21: 19.25, 22: 19.98, 23: 20.73,
    24: 21.54, 25: 22.35, 26: 23.21, 27: 24.11, 28: 25.03, 29: 26.02, 30: 27.03, 31: 28.13,
    32: 29.31, 33: 30.70, 34: 32.55, 35: 35.00,
}  # fmt: skip


def response(qid: str, answers: list[int], **fields: Any) -> dict[str, Any]:
    qr: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{BASE}/{qid}|1",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "authored": "2026-11-20T10:00:00Z",
        "item": [
            {"linkId": str(n), "answer": [{"valueInteger": value}]}
            for n, value in enumerate(answers, start=1)
        ],
    }
    qr.update(fields)
    return qr


def scores_for(qid: str, answers: list[int]) -> list[Score]:
    return score_answers(qid, read_answers(response(qid, answers), qid))


def answers_summing_to(raw: int, count: int, low: int, high: int) -> list[int]:
    """``count`` answers within [low, high] whose sum is ``raw``."""
    answers = [low] * count
    extra = raw - low * count
    for i in range(count):
        step = min(extra, high - low)
        answers[i] += step
        extra -= step
    assert extra == 0
    return answers


def refusal(qr: dict[str, Any], qid: str) -> FhirError:
    with pytest.raises(FhirError) as caught:
        read_answers(qr, qid)
    assert caught.value.status == 422
    return caught.value


# --- reading answers ------------------------------------------------------------------------------


def test_answers_are_read_by_link_id_in_any_order() -> None:
    qr = response("ucla3", [1, 2, 3])
    qr["item"].reverse()
    assert read_answers(qr, "ucla3") == {"1": 1, "2": 2, "3": 3}


# --- SWEMWBS --------------------------------------------------------------------------------------


def test_the_conversion_table_is_the_warwick_table() -> None:
    assert dict(SWEMWBS_METRIC) == WARWICK
    assert len(SWEMWBS_METRIC) == 29


@pytest.mark.parametrize(("raw", "metric"), sorted(WARWICK.items()))
def test_swemwbs_raw_sum_converts_to_the_metric_score(raw: int, metric: float) -> None:
    [score] = scores_for("swemwbs", answers_summing_to(raw, 7, 1, 5))
    assert (score.code_system, score.code) == (codes.SNOMED, "718466001")
    assert score.value == metric
    assert swemwbs_metric(raw) == metric
    [raw_part] = score.components
    assert (raw_part.code_system, raw_part.code, raw_part.value) == (
        WELLBEING_SYSTEM,
        "swemwbs-raw",
        raw,
    )


def test_swemwbs_boundary_answers() -> None:
    [lowest] = scores_for("swemwbs", [1] * 7)
    [highest] = scores_for("swemwbs", [5] * 7)
    assert (lowest.value, lowest.components[0].value) == (7.0, 7)
    assert (highest.value, highest.components[0].value) == (35.0, 35)


def test_swemwbs_29_is_26_02_not_the_outlier() -> None:
    assert swemwbs_metric(29) == 26.02


# --- WEMWBS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [14, 15, 40, 52, 69, 70])
def test_wemwbs_is_the_sum(raw: int) -> None:
    [score] = scores_for("wemwbs", answers_summing_to(raw, 14, 1, 5))
    assert (score.code_system, score.code, score.value) == (codes.SNOMED, "718426000", raw)
    assert score.components == ()
    assert score.unit == "{score}"


# --- ONS4 -----------------------------------------------------------------------------------------


def test_ons4_gives_four_separate_scores_and_no_total() -> None:
    scores = scores_for("ons4", [7, 8, 6, 9])
    assert [(s.code_system, s.code, s.value) for s in scores] == [
        (WELLBEING_SYSTEM, "ons4-life-satisfaction", 7),
        (WELLBEING_SYSTEM, "ons4-worthwhile", 8),
        (WELLBEING_SYSTEM, "ons4-happiness", 6),
        (WELLBEING_SYSTEM, "ons4-anxiety", 9),
    ]


def test_ons4_anxiety_keeps_its_own_direction() -> None:
    # Higher is worse for anxiety: the answer is reported as given, never reversed.
    scores = {s.code: s for s in scores_for("ons4", [10, 10, 10, 0])}
    assert scores["ons4-anxiety"].value == 0
    assert "higher is worse" in scores["ons4-anxiety"].display


def test_ons4_boundary_answers_0_and_10() -> None:
    assert [s.value for s in scores_for("ons4", [0, 10, 0, 10])] == [0, 10, 0, 10]


# --- UCLA-3 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("answers", "total"), [([1, 1, 1], 3), ([2, 1, 3], 6), ([3, 3, 3], 9)])
def test_ucla3_is_the_sum(answers: list[int], total: int) -> None:
    [score] = scores_for("ucla3", answers)
    assert (score.code_system, score.code, score.value) == (
        WELLBEING_SYSTEM,
        "ucla3-loneliness",
        total,
    )


# --- refusals -------------------------------------------------------------------------------------


def test_a_missing_item_is_named_by_its_link_id() -> None:
    qr = response("swemwbs", [3] * 7)
    del qr["item"][2]
    err = refusal(qr, "swemwbs")
    assert err.code == "required"
    assert "linkId '3'" in err.diagnostics
    assert err.expression == ["QuestionnaireResponse.item.where(linkId='3')"]


def test_every_missing_item_is_reported() -> None:
    err = refusal(response("ucla3", []), "ucla3")
    assert [i.expression for i in err.issues] == [
        (f"QuestionnaireResponse.item.where(linkId='{n}')",) for n in "123"
    ]


@pytest.mark.parametrize(
    ("qid", "answers", "index", "bad"),
    [
        ("swemwbs", [3] * 7, 4, 6),
        ("swemwbs", [3] * 7, 0, 0),
        ("wemwbs", [3] * 14, 13, 6),
        ("ons4", [5] * 4, 3, 11),
        ("ons4", [5] * 4, 0, -1),
        ("ucla3", [2] * 3, 1, 4),
        ("ucla3", [2] * 3, 2, 0),
    ],
)
def test_an_out_of_range_answer_is_named_by_its_link_id_not_its_value(
    qid: str, answers: list[int], index: int, bad: int
) -> None:
    qr = response(qid, answers)
    qr["item"][index]["answer"][0]["valueInteger"] = bad
    err = refusal(qr, qid)
    assert err.code == "value"
    assert f"linkId '{index + 1}'" in err.diagnostics
    assert f"item[{index}]" in err.diagnostics
    assert err.expression == [f"QuestionnaireResponse.item[{index}].answer[0].valueInteger"]
    assert str(bad) not in err.diagnostics.replace(f"item[{index}]", "")


@pytest.mark.parametrize(
    "answer",
    [
        [{"valueDecimal": 3.0}],
        [{"valueDecimal": 3.5}],
        [{"valueString": "3"}],
        [{"valueInteger": "3"}],
        [{"valueInteger": True}],
        [{"valueCoding": {"code": "3"}}],
        [{"valueInteger": 3}, {"valueInteger": 4}],
        [],
        None,
    ],
)
def test_anything_but_one_value_integer_is_refused(answer: Any) -> None:
    qr = response("swemwbs", [3] * 7)
    qr["item"][1]["answer"] = answer
    err = refusal(qr, "swemwbs")
    assert err.code == "value"
    assert "linkId '2'" in err.diagnostics
    assert "from 1 to 5" in err.diagnostics
    assert err.expression == ["QuestionnaireResponse.item[1].answer"]


def test_a_duplicate_item_is_refused() -> None:
    qr = response("ucla3", [1, 2, 3])
    qr["item"].append(copy.deepcopy(qr["item"][0]))
    err = refusal(qr, "ucla3")
    assert err.code == "value"
    assert "more than once" in err.diagnostics
    assert err.expression == ["QuestionnaireResponse.item[3]"]


def test_an_unknown_item_is_refused_without_echoing_its_link_id() -> None:
    qr = response("ucla3", [1, 2, 3])
    qr["item"].append({"linkId": "secret-text", "answer": [{"valueInteger": 1}]})
    err = refusal(qr, "ucla3")
    assert err.expression == ["QuestionnaireResponse.item[3]"]
    assert "secret-text" not in err.diagnostics


@pytest.mark.parametrize("status", ["in-progress", "stopped", "entered-in-error", None])
def test_only_a_completed_response_is_scored(status: str | None) -> None:
    qr = response("swemwbs", [3] * 7, status=status)
    err = refusal(qr, "swemwbs")
    assert err.code == "business-rule"
    assert err.expression == ["QuestionnaireResponse.status"]


def test_all_problems_are_reported_together() -> None:
    qr = response("swemwbs", [3] * 7)
    qr["item"][0]["answer"][0]["valueInteger"] = 9
    del qr["item"][6]
    err = refusal(qr, "swemwbs")
    assert [i.code for i in err.issues] == ["value", "required"]


def test_thousands_of_bad_items_give_a_bounded_outcome() -> None:
    qr = response("ucla3", [1, 2, 3])
    qr["item"] += [{"linkId": "x"}] * 5000
    assert len(refusal(qr, "ucla3").issues) == 20


# --- meaningful change ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instrument", "before", "after", "expected"),
    [
        ("swemwbs", 20.73, 23.73, True),  # exactly 3 metric points despite float arithmetic
        ("swemwbs", 23.21, 20.73, False),
        ("swemwbs", 23.21, 19.98, True),  # a fall counts too
        ("wemwbs", 40, 48, False),
        ("wemwbs", 40, 49, True),
        ("wemwbs", 49, 40, True),
    ],
)
def test_meaningful_change_defaults(
    instrument: str, before: float, after: float, expected: bool
) -> None:
    assert meaningful_change(instrument, before, after) is expected


def test_meaningful_change_thresholds_are_configurable() -> None:
    assert MEANINGFUL_CHANGE == {"swemwbs": 3.0, "wemwbs": 9.0}
    assert meaningful_change("wemwbs", 40, 43, {"wemwbs": 3.0})
    assert not meaningful_change("swemwbs", 20.0, 22.0, {"swemwbs": 2.87})


def test_meaningful_change_needs_a_threshold_for_the_instrument() -> None:
    with pytest.raises(KeyError):
        meaningful_change("ons4", 3, 9)
