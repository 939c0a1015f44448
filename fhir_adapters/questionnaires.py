"""The four wellbeing Questionnaires SPIS publishes (DESIGN §7, standards.md §3), as R4 JSON.

Every item is an ``integer`` with its range in the SDC ``minValue``/``maxValue`` extensions, so
a QuestionnaireResponse carries one ``valueInteger`` per item and scoring needs no answer lists.
Item texts are generic on purpose: the WEMWBS/SWEMWBS wording is licensed (standards §3.3), so
SPIS stores item numbers and answers, never the text; the ONS4 and UCLA-3 items are labelled the
same way for consistency. The ``Instrument`` records are also what ``wellbeing.py`` checks
answers against, so ranges are written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

QUESTIONNAIRE_BASE: Final = "https://spis.example.org/fhir/Questionnaire"
# Bump when an item or range changes: responses name the version they answered.
QUESTIONNAIRE_VERSION: Final = "1"
MIN_VALUE_URL: Final = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE_URL: Final = "http://hl7.org/fhir/StructureDefinition/maxValue"

_WARWICK_NOTICE = (
    "© NHS Health Scotland, University of Warwick and University of Edinburgh, all rights "
    "reserved. The item wording is licensed: register with the University of Warwick to use the "
    "scale and take the wording from the licensed materials. SPIS does not reproduce it; it "
    "records each item's number and answer only."
)


@dataclass(frozen=True, slots=True)
class Instrument:
    """One questionnaire: items answered with integers from ``low`` to ``high`` inclusive.

    ``items`` are the generic item texts; their linkIds are "1".."n" in this order.
    """

    id: str
    name: str  # computable name (Questionnaire.name)
    title: str
    items: tuple[str, ...]
    low: int
    high: int
    description: str
    copyright: str

    # "1".."n", made once: every answer of every questionnaire read is checked against them.
    link_ids: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        numbers = tuple(str(n) for n in range(1, len(self.items) + 1))
        object.__setattr__(self, "link_ids", numbers)

    @property
    def url(self) -> str:
        return f"{QUESTIONNAIRE_BASE}/{self.id}"


def _numbered(label: str, count: int, scale: str) -> tuple[str, ...]:
    return tuple(f"{label} item {n} ({scale})" for n in range(1, count + 1))


SWEMWBS: Final = Instrument(
    id="swemwbs",
    name="SWEMWBS",
    title="Short Warwick-Edinburgh Mental Wellbeing Scale (SWEMWBS)",
    items=_numbered("SWEMWBS", 7, "1 none of the time to 5 all of the time"),
    low=1,
    high=5,
    description=(
        "Seven items about the last two weeks, each answered 1-5. Scored by summing the items "
        "(raw 7-35) and converting the sum to the Rasch metric score with the Warwick conversion "
        "table. Item texts here are placeholders: the wording is licensed."
    ),
    copyright="SWEMWBS " + _WARWICK_NOTICE,
)

WEMWBS: Final = Instrument(
    id="wemwbs",
    name="WEMWBS",
    title="Warwick-Edinburgh Mental Wellbeing Scale (WEMWBS)",
    items=_numbered("WEMWBS", 14, "1 none of the time to 5 all of the time"),
    low=1,
    high=5,
    description=(
        "Fourteen items about the last two weeks, each answered 1-5; the score is the sum "
        "(14-70). Item texts here are placeholders: the wording is licensed."
    ),
    copyright="WEMWBS " + _WARWICK_NOTICE,
)

ONS4: Final = Instrument(
    id="ons4",
    name="ONS4",
    title="ONS4 personal well-being",
    items=(
        "ONS4 life satisfaction (0 not at all to 10 completely)",
        "ONS4 things done in life are worthwhile (0 not at all to 10 completely)",
        "ONS4 happiness yesterday (0 not at all to 10 completely)",
        "ONS4 anxiety yesterday (0 not at all to 10 completely; higher is worse)",
    ),
    low=0,
    high=10,
    description=(
        "The Office for National Statistics' four personal well-being questions (harmonised "
        "standard), each answered 0-10. Four separate measures, never summed; for anxiety a "
        "higher answer is worse. Ask the questions in the ONS wording."
    ),
    copyright=(
        "ONS personal well-being questions: Office for National Statistics, Crown copyright, "
        "Open Government Licence v3.0."
    ),
)

UCLA3: Final = Instrument(
    id="ucla3",
    name="UCLA3",
    title="UCLA 3-item loneliness scale",
    items=(
        "UCLA-3 lack of companionship (1 hardly ever to 3 often)",
        "UCLA-3 feeling left out (1 hardly ever to 3 often)",
        "UCLA-3 feeling isolated (1 hardly ever to 3 often)",
    ),
    low=1,
    high=3,
    description=(
        "Three items, each answered 1 (hardly ever), 2 (some of the time) or 3 (often); the "
        "score is the sum (3-9), higher meaning lonelier. Not the 4-point Never-Often variant."
    ),
    copyright=(
        "Hughes ME, Waite LJ, Hawkley LC, Cacioppo JT. A short scale for measuring loneliness in "
        "large surveys. Research on Aging 2004;26(6):655-672."
    ),
)

INSTRUMENTS: Final = MappingProxyType({i.id: i for i in (SWEMWBS, WEMWBS, ONS4, UCLA3)})


def questionnaire(instrument: Instrument) -> dict[str, Any]:
    """The Questionnaire resource for one instrument."""
    return {
        "resourceType": "Questionnaire",
        "id": instrument.id,
        "url": instrument.url,
        "version": QUESTIONNAIRE_VERSION,
        "name": instrument.name,
        "title": instrument.title,
        "status": "active",
        "experimental": False,
        "subjectType": ["Patient"],
        "publisher": "SPIS",
        "description": instrument.description,
        "copyright": instrument.copyright,
        "item": [
            _item(link_id, text, instrument)
            for link_id, text in zip(instrument.link_ids, instrument.items, strict=True)
        ],
    }


def _item(link_id: str, text: str, instrument: Instrument) -> dict[str, Any]:
    return {
        "extension": [
            {"url": MIN_VALUE_URL, "valueInteger": instrument.low},
            {"url": MAX_VALUE_URL, "valueInteger": instrument.high},
        ],
        "linkId": link_id,
        "text": text,
        "type": "integer",
        "required": True,
    }


# Built once: these are served as they are. Callers must not mutate them (copy first).
QUESTIONNAIRES: Final[dict[str, dict[str, Any]]] = {
    instrument_id: questionnaire(instrument) for instrument_id, instrument in INSTRUMENTS.items()
}


def questionnaire_for(canonical: str) -> str | None:
    """The id of the Questionnaire a QuestionnaireResponse.questionnaire canonical names, or None.

    ``<url>`` and ``<url>|<our version>`` match; another version does not, because its items and
    ranges may differ from the ones SPIS scores against.
    """
    url, _, version = canonical.partition("|")
    if version and version != QUESTIONNAIRE_VERSION:
        return None
    for instrument in INSTRUMENTS.values():
        if url == instrument.url:
            return instrument.id
    return None


def supported_canonicals() -> list[str]:
    """What to tell a client that sent a questionnaire SPIS does not score."""
    return [f"{i.url}|{QUESTIONNAIRE_VERSION}" for i in INSTRUMENTS.values()]
