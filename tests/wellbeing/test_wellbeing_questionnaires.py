"""The published wellbeing Questionnaires: valid R4, generic item texts, canonical lookup."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire

from fhir_adapters._shape import check_shape, resource_class
from fhir_adapters.questionnaires import (
    MAX_VALUE_URL,
    MIN_VALUE_URL,
    QUESTIONNAIRES,
    questionnaire_for,
    supported_canonicals,
)

RANGES = {"swemwbs": (7, 1, 5), "wemwbs": (14, 1, 5), "ons4": (4, 0, 10), "ucla3": (3, 1, 3)}


def test_the_four_questionnaires_are_published_by_id() -> None:
    assert set(QUESTIONNAIRES) == {"swemwbs", "wemwbs", "ons4", "ucla3"}
    for qid, q in QUESTIONNAIRES.items():
        assert q["id"] == qid
        assert q["url"] == f"https://spis.example.org/fhir/Questionnaire/{qid}"


@pytest.mark.parametrize("qid", sorted(QUESTIONNAIRES))
def test_each_questionnaire_is_valid_r4_json(qid: str) -> None:
    q = QUESTIONNAIRES[qid]
    Questionnaire.model_validate(q)
    model = resource_class("Questionnaire")
    assert model is not None
    assert check_shape(q, model, "Questionnaire") == []


@pytest.mark.parametrize("qid", sorted(QUESTIONNAIRES))
def test_items_are_required_integers_with_their_range(qid: str) -> None:
    count, low, high = RANGES[qid]
    items = QUESTIONNAIRES[qid]["item"]
    assert [item["linkId"] for item in items] == [str(n) for n in range(1, count + 1)]
    for item in items:
        assert item["type"] == "integer"
        assert item["required"] is True
        assert bounds(item) == (low, high)


def bounds(item: dict[str, Any]) -> tuple[int, int]:
    values = {ext["url"]: ext["valueInteger"] for ext in item["extension"]}
    return values[MIN_VALUE_URL], values[MAX_VALUE_URL]


@pytest.mark.parametrize("qid", ["swemwbs", "wemwbs"])
def test_licensed_wording_is_not_reproduced(qid: str) -> None:
    q = QUESTIONNAIRES[qid]
    label = qid.upper()
    for n, item in enumerate(q["item"], start=1):
        assert item["text"].startswith(f"{label} item {n} ")
    # A few words of the real items (standards §3.3) must appear nowhere.
    text = str(q).lower()
    assert "optimistic" not in text
    assert "useful" not in text
    assert "licensed" in q["copyright"]
    assert "licensed" in q["description"]


@pytest.mark.parametrize(
    ("canonical", "expected"),
    [
        ("https://spis.example.org/fhir/Questionnaire/swemwbs", "swemwbs"),
        ("https://spis.example.org/fhir/Questionnaire/swemwbs|1", "swemwbs"),
        ("https://spis.example.org/fhir/Questionnaire/wemwbs|1", "wemwbs"),
        ("https://spis.example.org/fhir/Questionnaire/ons4", "ons4"),
        ("https://spis.example.org/fhir/Questionnaire/ucla3|1", "ucla3"),
        ("https://spis.example.org/fhir/Questionnaire/swemwbs|2", None),  # other items, maybe
        ("https://spis.example.org/fhir/Questionnaire/phq9", None),
        ("https://example.org/Questionnaire/swemwbs", None),
        ("Questionnaire/swemwbs", None),
        ("", None),
    ],
)
def test_questionnaire_for_a_canonical(canonical: str, expected: str | None) -> None:
    assert questionnaire_for(canonical) == expected


def test_supported_canonicals_name_the_version() -> None:
    assert "https://spis.example.org/fhir/Questionnaire/ons4|1" in supported_canonicals()
    assert all(questionnaire_for(c) for c in supported_canonicals())
