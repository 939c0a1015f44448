"""The published wellbeing Questionnaires as web forms, and a form's answers as the
QuestionnaireResponse a time bank system sends (DESIGN §7). Pure: no database, no HTTP.

Labels come from what ``questionnaires.py`` publishes: item numbers for WEMWBS and SWEMWBS, whose
wording is licensed (the broker reads the statements from the licensed paper form), and short
names for ONS4 and UCLA-3. The answer scales are shown in full.

Answers go in as typed, so that intake's own checks (``wellbeing.read_answers``) refuse a missing
or out-of-range answer with an issue naming the item; ``item_of`` maps such an issue back to the
form item. Run the response through ``parse.validate_resource`` and ``referrals.service.submit``
as ``POST /fhir/QuestionnaireResponse`` does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from fhir_adapters.questionnaires import INSTRUMENTS, QUESTIONNAIRE_VERSION, QUESTIONNAIRES

# FHIR integer is 32-bit: a larger number would fail validation before intake could name the item.
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_WARWICK_SCALE: Final = {
    1: "None of the time",
    2: "Rarely",
    3: "Some of the time",
    4: "Often",
    5: "All of the time",
}
# Anchors only for the 0-10 scale: ONS labels its ends, not its steps.
_ONS4_SCALE: Final = {0: "Not at all", 10: "Completely"}
_UCLA3_SCALE: Final = {1: "Hardly ever", 2: "Some of the time", 3: "Often"}
_SCALES: Final[Mapping[str, Mapping[int, str]]] = {
    "swemwbs": _WARWICK_SCALE,
    "wemwbs": _WARWICK_SCALE,
    "ons4": _ONS4_SCALE,
    "ucla3": _UCLA3_SCALE,
}


@dataclass(frozen=True, slots=True)
class FormItem:
    """One question on the page. ``options`` are (value, label) pairs for a scale, every allowed
    value in order; ``min_value``/``max_value`` bound the integer answer either way."""

    link_id: str
    label: str
    required: bool
    options: tuple[tuple[str, str], ...]
    min_value: int
    max_value: int


def questionnaire_choices() -> list[tuple[str, str]]:
    """(questionnaire id, title) of each instrument a broker can record."""
    return [(qid, str(q["title"])) for qid, q in QUESTIONNAIRES.items()]


def form_items(questionnaire_id: str) -> list[FormItem]:
    """The items of a published Questionnaire, in order. KeyError for an unknown id."""
    instrument = INSTRUMENTS[questionnaire_id]
    scale = _SCALES[questionnaire_id]
    options = tuple(
        (str(value), _option_label(value, scale.get(value)))
        for value in range(instrument.low, instrument.high + 1)
    )
    return [
        FormItem(
            link_id=item["linkId"],
            label=_label(item["text"]),
            required=bool(item.get("required")),
            options=options,
            min_value=instrument.low,
            max_value=instrument.high,
        )
        for item in QUESTIONNAIRES[questionnaire_id]["item"]
    ]


def _label(text: str) -> str:
    """The published item text without its scale in brackets: the options show the scale."""
    return re.sub(r"\s*\([^()]*\)$", "", text)


def _option_label(value: int, words: str | None) -> str:
    return f"{value} - {words}" if words else str(value)


def questionnaire_response(
    questionnaire_id: str,
    answers: Mapping[str, str],
    *,
    patient_ref: str,
    based_on_ref: str,
    authored: str,
) -> dict[str, Any]:
    """A completed QuestionnaireResponse: linkId -> answer as typed (blank = not answered).

    ``based_on_ref`` is the ServiceRequest the time bank holds (its filler order, or the
    original); ``authored`` a FHIR dateTime. Unanswered items are left out, as a client leaves
    them out; items come in the Questionnaire's order, answers not of the Questionnaire are
    dropped (a form has no other inputs). KeyError for an unknown questionnaire id.
    """
    instrument = INSTRUMENTS[questionnaire_id]
    items = []
    for link_id in instrument.link_ids:
        answer = (answers.get(link_id) or "").strip()
        if answer:
            items.append({"linkId": link_id, "answer": [_answer(answer)]})
    response: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{instrument.url}|{QUESTIONNAIRE_VERSION}",
        "status": "completed",
        "basedOn": [{"reference": based_on_ref}],
        "subject": {"reference": patient_ref},
        "authored": authored,
    }
    if items:  # FHIR allows no empty arrays
        response["item"] = items
    return response


def _answer(typed: str) -> dict[str, Any]:
    """A whole number is a valueInteger, in range or not: intake checks the range. Anything
    else stays text (valueString), which intake refuses as not an integer answer, by item."""
    if re.fullmatch(r"[+-]?\d{1,10}", typed) and _INT_MIN <= int(typed) <= _INT_MAX:
        return {"valueInteger": int(typed)}
    return {"valueString": typed}


_ITEM_INDEX = re.compile(r"^QuestionnaireResponse\.item\[(\d+)\]")
_ITEM_LINK = re.compile(r"^QuestionnaireResponse\.item\.where\(linkId='([^']*)'\)")


def item_of(expression: str, response: Mapping[str, Any]) -> str | None:
    """The linkId an OperationOutcome issue expression is about, for the ``response`` it was
    raised on; None when it is about no one item (show it above the form).

    Intake names a missing item by linkId and a bad answer by its position in ``response``.
    """
    if found := _ITEM_LINK.match(expression):
        return found[1]
    if found := _ITEM_INDEX.match(expression):
        items = response.get("item")
        index = int(found[1])
        if isinstance(items, list) and index < len(items) and isinstance(items[index], dict):
            link_id = items[index].get("linkId")
            return link_id if isinstance(link_id, str) else None
    return None
