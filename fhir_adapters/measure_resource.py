"""The outcome measures published as R4 `Measure` resources, and the codings their reports share.

Pure. `measure_report.py` renders reports of these Measures; the shapes are explained there and in
docs/api.md ("Outcome reports").
"""

from __future__ import annotations

from typing import Any, Final

from fhir_adapters.codes import SPIS_CODESYSTEM_BASE
from fhir_adapters.measures import (
    FIGURE_SYSTEM,
    FUNNEL,
    MIN_COUNT,
    MIN_N,
    ROUND_TO,
    STRATIFIER_SYSTEM,
    Figure,
    FigureKind,
    MeasureDefinition,
    Stratifier,
)

_SPIS: Final = SPIS_CODESYSTEM_BASE.removesuffix("/CodeSystem")
DATA_ABSENT_REASON: Final = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
# Which disclosure rule hid a number: a `Suppression` code (small-count, secondary, ...).
SUPPRESSION_URL: Final = f"{_SPIS}/StructureDefinition/disclosure-control"
UCUM: Final = "http://unitsofmeasure.org"
CURRENCY: Final = "urn:iso:std:iso:4217"
POPULATION_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/measure-population"
SCORING_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/measure-scoring"
TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/measure-type"
IMPROVEMENT_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/measure-improvement-notation"
# R5 elements of Measure.group that R4 lacks, as R5 cross-version extensions.
_R5_GROUP: Final = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Measure.group"
GROUP_SCORING_URL: Final = f"{_R5_GROUP}.scoring"
GROUP_IMPROVEMENT_URL: Final = f"{_R5_GROUP}.improvementNotation"
GROUP_UNIT_URL: Final = f"{_R5_GROUP}.scoringUnit"

# R4 has one scoring per Measure: the funnel counts people (its medians say their own scoring on
# the group); the others publish sums, means and shares.
_MEASURE_SCORING: Final = {FUNNEL.id: "cohort"}
_GROUP_SCORING: Final = {
    FigureKind.COUNT: "cohort",
    FigureKind.SHARE: "proportion",
    FigureKind.RATIO: "ratio",
}
STRATIFIER_TITLES: Final = {
    Stratifier.TOTAL: "Whole board area",
    Stratifier.PRACTICE: "GP practice (ODS code)",
    Stratifier.TIMEBANK: "Time bank",
    Stratifier.MONTH: "Month (YYYY-MM)",
    Stratifier.REASON: "Reason",
}
DISCLOSURE_RULES: Final = (
    "Disclosure control, applied to every cell before it leaves SPIS (groups and strata alike):\n\n"
    f"- A count of 1 to {MIN_COUNT - 1} is suppressed; 0 is shown; every other count is rounded "
    f"to the nearest {ROUND_TO}.\n"
    "- Secondary suppression: where a stratifier has a suppressed stratum, at least two are "
    "suppressed and together they are more than their number, so no suppressed count can be "
    "recovered from the total or the other strata.\n"
    f"- Means (with their 95% confidence interval), medians (with their interquartile range), "
    f"hours, shares and ratios are shown only when they rest on at least {MIN_N} people and "
    "their count is shown; a share also needs its numerator shown and its complement not small.\n"
    "- An estimate is suppressed when a figure it rests on is suppressed.\n\n"
    "A suppressed number carries the data-absent-reason `masked` and the extension "
    f"{SUPPRESSION_URL} naming the rule; a number with nothing to report carries "
    "`not-applicable`. Reports never carry subjectResults."
)


def measure_resource(
    definition: MeasureDefinition, *, baseline_days: int, min_weeks: int, max_weeks: int
) -> dict[str, Any]:
    """The R4 Measure for `definition`, its cohort rules filled in with the configured windows."""
    scoring = _MEASURE_SCORING.get(definition.id, "continuous-variable")
    resource: dict[str, Any] = {
        "resourceType": "Measure",
        "id": definition.id,
        "url": definition.url,
        "name": "".join(part.capitalize() for part in definition.id.split("-")),
        "title": definition.title,
        "status": "active",
        "experimental": False,
        "publisher": "SPIS",
        "description": definition.description,
        "scoring": _concept(SCORING_SYSTEM, scoring),
        "type": [_concept(TYPE_SYSTEM, "process" if definition is FUNNEL else "outcome")],
        "definition": [definition.cohort_text(baseline_days, min_weeks, max_weeks)],
        "guidance": DISCLOSURE_RULES,
        "group": [_group(definition, f) for f in definition.figures],
    }
    if definition.improvement:
        resource["improvementNotation"] = improvement(definition.improvement)
    if any(f.kind is FigureKind.MONEY for f in definition.figures):
        resource["disclaimer"] = "An estimate, not a measurement: see each report's assumptions."
    return resource


def _group(definition: MeasureDefinition, figure: Figure) -> dict[str, Any]:
    extensions = [
        {
            "url": GROUP_SCORING_URL,
            "valueCodeableConcept": _concept(
                SCORING_SYSTEM, _GROUP_SCORING.get(figure.kind, "continuous-variable")
            ),
        },
        {"url": GROUP_UNIT_URL, "valueCodeableConcept": _unit_concept(figure.unit)},
    ]
    if figure.improvement:
        extensions.append(
            {"url": GROUP_IMPROVEMENT_URL, "valueCodeableConcept": improvement(figure.improvement)}
        )
    group: dict[str, Any] = {
        "extension": extensions,
        "code": figure_code(figure),
        "description": figure.description,
        "population": _populations(definition, figure),
    }
    if figure.stratifiers:
        group["stratifier"] = [
            {"code": stratifier_code(s), "description": STRATIFIER_TITLES[s]}
            for s in figure.stratifiers
        ]
    return group


def _populations(definition: MeasureDefinition, figure: Figure) -> list[dict[str, Any]]:
    base = definition.figure(figure.base) if figure.base else None
    if figure.kind is FigureKind.COUNT:
        return [_population("initial-population", figure.description)]
    found = []
    if figure.kind is FigureKind.SHARE and base and figure.numerator:
        numerator = definition.figure(figure.numerator)
        found.append(_population("denominator", base.description))
        found.append(_population("numerator", numerator.description))
    elif base:
        found.append(_population("measure-population", base.description))
    if figure.kind is not FigureKind.SHARE:
        found.append(_population("measure-observation", figure.description))
    return found


def _population(code: str, text: str) -> dict[str, Any]:
    # R4 requires a criteria Expression; SPIS's rules are prose (the Measure's definition).
    return {
        "code": _concept(POPULATION_SYSTEM, code),
        "criteria": {"language": "text/plain", "expression": text},
    }


def figure_code(figure: Figure) -> dict[str, Any]:
    return {
        "coding": [{"system": FIGURE_SYSTEM, "code": figure.code, "display": figure.title}],
        "text": figure.title,
    }


def stratifier_code(stratifier: Stratifier) -> dict[str, Any]:
    return {
        "coding": [{"system": STRATIFIER_SYSTEM, "code": stratifier.value}],
        "text": STRATIFIER_TITLES[stratifier],
    }


def improvement(direction: str) -> dict[str, Any]:
    return _concept(IMPROVEMENT_SYSTEM, direction)


def quantity(figure: Figure, value: float | int) -> dict[str, Any]:
    """A Quantity in the figure's unit: UCUM, or ISO 4217 pounds for money."""
    if figure.kind is FigureKind.MONEY:
        return {"value": value, "unit": "GBP", "system": CURRENCY, "code": "GBP"}
    return {"value": value, "unit": figure.unit, "system": UCUM, "code": figure.unit}


def _unit_concept(unit: str) -> dict[str, Any]:
    if unit == "[GBP]":
        return _concept(CURRENCY, "GBP")
    return _concept(UCUM, unit)


def _concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}
