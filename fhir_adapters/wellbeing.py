"""QuestionnaireResponse -> answers -> scores -> score Observations (DESIGN §7). Pure, no DB.

Each instrument gives one Observation per score: SWEMWBS and WEMWBS one each, ONS4 four (one per
measure: they are never summed), UCLA-3 one. The SWEMWBS Observation's value is the Rasch metric
score, and the raw sum travels as a ``component`` of the same Observation: a GP searching by the
SNOMED code gets one result per response, and the raw score cannot be mistaken for a metric score
because it never sits in a ``value`` under that code (standards §3.6 item 4).

Refusals are 422 FhirErrors naming the item by index and linkId and, for a bad answer, the allowed
range; never the answer that was sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from fhir_adapters import codes
from fhir_adapters.outcome import FhirError, Issue
from fhir_adapters.questionnaires import INSTRUMENTS, Instrument
from fhir_adapters.rules import reference, split_reference

# TODO(lead): move these four to codes.py, where every system URL is named once.
WELLBEING_SYSTEM: Final = f"{codes.SPIS_CODESYSTEM_BASE}/wellbeing"
OBSERVATION_CATEGORY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
OBSERVATION_CATEGORY_SURVEY: Final = "survey"
UCUM: Final = "http://unitsofmeasure.org"

SCORE_UNIT: Final = "{score}"
SWEMWBS_SCORE: Final = "718466001"  # SNOMED: Short Warwick-Edinburgh Mental Well-being Scale score
WEMWBS_SCORE: Final = "718426000"  # SNOMED: Warwick-Edinburgh Mental Well-being Scale score

# Warwick raw -> metric conversion table (DESIGN §7; standards §3.3: 29 -> 26.02, not 25.99).
SWEMWBS_METRIC: Final[Mapping[int, float]] = MappingProxyType(
    {
        7: 7.00, 8: 9.51, 9: 11.25, 10: 12.40, 11: 13.33, 12: 14.08, 13: 14.75, 14: 15.32,
        15: 15.84, 16: 16.36, 17: 16.88, 18: 17.43, 19: 17.98, 20: 18.59, 21: 19.25, 22: 19.98,
        23: 20.73, 24: 21.54, 25: 22.35, 26: 23.21, 27: 24.11, 28: 25.03, 29: 26.02, 30: 27.03,
        31: 28.13, 32: 29.31, 33: 30.70, 34: 32.55, 35: 35.00,
    }
)  # fmt: skip

# Individual reliable change (standards §3.3): 3 SWEMWBS metric points (Shah et al. 2018) and
# 9 WEMWBS points (Maheswaran et al. 2012), as NHS Digital's MHSDS pipeline uses them.
MEANINGFUL_CHANGE: Final[Mapping[str, float]] = MappingProxyType({"swemwbs": 3.0, "wemwbs": 9.0})

# Enough issues to fix a response; a response with thousands of bad items gets no more.
_MAX_ISSUES = 20


@dataclass(frozen=True, slots=True)
class Score:
    """One score, ready to become an Observation (or, as a component, part of one)."""

    code_system: str
    code: str
    display: str
    value: float | int
    unit: str = SCORE_UNIT
    components: tuple[Score, ...] = ()


@dataclass(frozen=True, slots=True)
class Envelope:
    """What every score Observation takes from its response: whose, and when."""

    subject: str  # the Patient reference, as the response has it
    authored: str


# --- reading the response -------------------------------------------------------------------------


def check_envelope(qr: dict[str, Any]) -> Envelope:
    """The response must name its Patient and when it was answered; both go on every score."""
    subject = reference(qr.get("subject"))
    parts = split_reference(subject) if subject else None
    authored = qr.get("authored")
    issues = []
    if subject is None or parts is None or parts[0] != "Patient":
        msg = "QuestionnaireResponse.subject: a reference to the Patient is required"
        issues.append(Issue("required", msg, ("QuestionnaireResponse.subject",)))
    if not isinstance(authored, str) or not authored:
        msg = "QuestionnaireResponse.authored: required, it dates the scores"
        issues.append(Issue("required", msg, ("QuestionnaireResponse.authored",)))
    if issues:
        raise FhirError.many(422, issues)
    assert subject is not None
    assert isinstance(authored, str)
    return Envelope(subject, authored)


def read_answers(qr: dict[str, Any], questionnaire_id: str) -> dict[str, int]:
    """One integer answer per item, by linkId; every problem found is reported at once."""
    instrument = INSTRUMENTS[questionnaire_id]
    _check_completed(qr)
    answers: dict[str, int] = {}
    issues: list[Issue] = []
    items = qr.get("item")
    for index, item in enumerate(items if isinstance(items, list) else []):
        issue = _read_item(instrument, index, item, answers)
        if issue is not None:
            issues.append(issue)
    issues += [_missing(instrument, link_id) for link_id in _unanswered(instrument, items)]
    if issues:
        raise FhirError.many(422, issues[:_MAX_ISSUES])
    return answers


def _check_completed(qr: dict[str, Any]) -> None:
    if qr.get("status") != "completed":
        msg = "QuestionnaireResponse.status: only a completed response can be scored"
        raise FhirError(422, "business-rule", msg, ["QuestionnaireResponse.status"])


def _read_item(
    instrument: Instrument, index: int, item: object, answers: dict[str, int]
) -> Issue | None:
    """Add the item's answer to ``answers``, or return what is wrong with it. The messages are
    made only for a wrong item (a batch reads hundreds of good ones)."""
    link_id = item.get("linkId") if isinstance(item, dict) else None
    if link_id not in instrument.link_ids:
        where = f"QuestionnaireResponse.item[{index}]"
        # Not echoed: an unknown linkId is client text.
        return Issue("value", f"{where}: linkId is not an item of {instrument.name}", (where,))
    assert isinstance(item, dict)
    assert isinstance(link_id, str)
    value = _single_answer(item)
    if link_id not in answers and value is not None and instrument.low <= value <= instrument.high:
        answers[link_id] = value
        return None
    where = f"QuestionnaireResponse.item[{index}]"
    label = f"{where} (linkId '{link_id}')"
    if link_id in answers:
        return Issue("value", f"{label}: the item is answered more than once", (where,))
    if value is None:
        return _bad_answer(instrument, label, f"{where}.answer")
    return _bad_answer(instrument, label, f"{where}.answer[0].valueInteger")


def _single_answer(item: dict[str, Any]) -> int | None:
    """The one valueInteger answer. The Questionnaire declares integer items, so a decimal or a
    coding is refused rather than guessed at."""
    answer = item.get("answer")
    if not isinstance(answer, list) or len(answer) != 1 or not isinstance(answer[0], dict):
        return None
    value = answer[0].get("valueInteger")
    # bool is an int in Python, but JSON true is not a FHIR integer.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bad_answer(instrument: Instrument, label: str, where: str) -> Issue:
    allowed = f"{instrument.low} to {instrument.high}"
    msg = f"{label}: needs exactly one answer, a valueInteger from {allowed}"
    return Issue("value", msg, (where,))


def _unanswered(instrument: Instrument, items: object) -> list[str]:
    """Items with no entry at all; an entry with a bad answer is reported where it is."""
    entries = items if isinstance(items, list) else []
    present = {item.get("linkId") for item in entries if isinstance(item, dict)}
    return [link_id for link_id in instrument.link_ids if link_id not in present]


def _missing(instrument: Instrument, link_id: str) -> Issue:
    msg = f"QuestionnaireResponse.item (linkId '{link_id}'): every {instrument.name} item needs "
    msg += "an answer"
    return Issue("required", msg, (f"QuestionnaireResponse.item.where(linkId='{link_id}')",))


# --- scoring --------------------------------------------------------------------------------------


def score_answers(questionnaire_id: str, answers: Mapping[str, int]) -> list[Score]:
    """The scores for a response whose answers ``read_answers`` accepted."""
    return _SCORERS[questionnaire_id](answers)


def swemwbs_metric(raw: int) -> float:
    """Warwick conversion of a SWEMWBS raw sum (7-35) to its Rasch metric score."""
    return SWEMWBS_METRIC[raw]


def _swemwbs(answers: Mapping[str, int]) -> list[Score]:
    raw = sum(answers.values())
    raw_score = Score(WELLBEING_SYSTEM, "swemwbs-raw", "SWEMWBS raw score (sum of items)", raw)
    display = "Short Warwick-Edinburgh Mental Well-being Scale score"
    metric = swemwbs_metric(raw)
    return [Score(codes.SNOMED, SWEMWBS_SCORE, display, metric, components=(raw_score,))]


def _wemwbs(answers: Mapping[str, int]) -> list[Score]:
    display = "Warwick-Edinburgh Mental Well-being Scale score"
    return [Score(codes.SNOMED, WEMWBS_SCORE, display, sum(answers.values()))]


# ONS4 linkId -> (code, display); anxiety keeps its own direction (higher is worse).
_ONS4_MEASURES: Final = {
    "1": ("ons4-life-satisfaction", "ONS4 life satisfaction"),
    "2": ("ons4-worthwhile", "ONS4 worthwhile"),
    "3": ("ons4-happiness", "ONS4 happiness yesterday"),
    "4": ("ons4-anxiety", "ONS4 anxiety yesterday (higher is worse)"),
}


def _ons4(answers: Mapping[str, int]) -> list[Score]:
    return [
        Score(WELLBEING_SYSTEM, code, display, answers[link_id])
        for link_id, (code, display) in _ONS4_MEASURES.items()
    ]


def _ucla3(answers: Mapping[str, int]) -> list[Score]:
    display = "UCLA 3-item loneliness score (higher is lonelier)"
    return [Score(WELLBEING_SYSTEM, "ucla3-loneliness", display, sum(answers.values()))]


_SCORERS: Final[Mapping[str, Callable[[Mapping[str, int]], list[Score]]]] = MappingProxyType(
    {"swemwbs": _swemwbs, "wemwbs": _wemwbs, "ons4": _ons4, "ucla3": _ucla3}
)


def meaningful_change(
    instrument: str,
    before: float,
    after: float,
    thresholds: Mapping[str, float] = MEANINGFUL_CHANGE,
) -> bool:
    """True when the change, either way, reaches the instrument's reliable-change threshold.

    SWEMWBS compares metric scores, WEMWBS sums. Instruments without a threshold raise KeyError.
    """
    # Rounded so that table values such as 20.73 -> 23.73 count as exactly 3 points.
    return round(abs(after - before), 6) >= thresholds[instrument]


# --- score Observations ---------------------------------------------------------------------------


def score_observations(
    qr_ref: str, qr: dict[str, Any], based_on: str | None, scores: list[Score]
) -> list[dict[str, Any]]:
    """One Observation per score, derived from the response (``qr_ref``, e.g. its Type/id)."""
    envelope = check_envelope(qr)
    return [_observation(qr_ref, envelope, based_on, score) for score in scores]


def _observation(
    qr_ref: str, envelope: Envelope, based_on: str | None, score: Score
) -> dict[str, Any]:
    # Keys in the order R4 lists Observation's elements, so stored JSON reads naturally.
    observation: dict[str, Any] = {"resourceType": "Observation"}
    if based_on is not None:
        observation["basedOn"] = [{"reference": based_on}]
    observation |= {
        "status": "final",
        "category": [_survey_category()],
        "code": _concept(score),
        "subject": {"reference": envelope.subject},
        "effectiveDateTime": envelope.authored,
        "valueQuantity": _quantity(score),
        "derivedFrom": [{"reference": qr_ref}],
    }
    if score.components:
        observation["component"] = [
            {"code": _concept(part), "valueQuantity": _quantity(part)} for part in score.components
        ]
    return observation


def _survey_category() -> dict[str, Any]:
    coding = {"system": OBSERVATION_CATEGORY_SYSTEM, "code": OBSERVATION_CATEGORY_SURVEY}
    return {"coding": [{**coding, "display": "Survey"}]}


def _concept(score: Score) -> dict[str, Any]:
    coding = {"system": score.code_system, "code": score.code, "display": score.display}
    return {"coding": [coding], "text": score.display}


def _quantity(score: Score) -> dict[str, Any]:
    return {"value": score.value, "unit": score.unit, "system": UCUM, "code": score.unit}
