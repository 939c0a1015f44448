"""measure_report: the Measures, a Report as a MeasureReport and as CSV, checked with the R4B models
and read back cell by cell (tests/fixtures/measure_reports.py)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fhir.resources.R4B.measure import Measure
from fhir.resources.R4B.measurereport import MeasureReport

from fhir_adapters.measure_report import (
    CSV_HEADER,
    DECIMALS,
    measure_report,
    measure_resource,
    report_csv,
)
from fhir_adapters.measures import (
    FUNNEL,
    MEASURES,
    MIN_COUNT,
    MIN_N,
    ROUND_TO,
    SOCIAL_VALUE,
    WELLBEING,
    Assumption,
    Cell,
    FigureKind,
    MeasureDefinition,
    Report,
    Stratifier,
    Suppression,
)
from tests.fixtures.measure_reports import expected, from_csv, from_measure_report

P, T, M, R = Stratifier.PRACTICE, Stratifier.TIMEBANK, Stratifier.MONTH, Stratifier.REASON
R5 = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Measure.group"
GENERATED = datetime(2026, 10, 2, 9, 30, tzinfo=UTC)


def report(
    definition: MeasureDefinition, cells: list[Cell], assumptions: tuple[Assumption, ...] = ()
) -> Report:
    return Report(
        definition,
        "board-1",
        "South East London ICB",
        date(2026, 7, 1),
        date(2026, 9, 30),
        GENERATED,
        tuple(cells),
        assumptions=assumptions,
    )


def funnel_cells() -> list[Cell]:
    return [
        Cell("received", Stratifier.TOTAL, "", "All", 45.0),
        Cell("received", P, "F84001", "Rushey Green Group Practice", 35.0),
        Cell("received", P, "F84002", "Other Practice", None, suppressed=Suppression.SMALL_COUNT),
        Cell("received", P, "F84003", "Third Practice", None, suppressed=Suppression.SECONDARY),
        Cell("received", T, "tb-1", "=HYPERLINK(\"http://x\")", 40.0),
        Cell("received", T, "none", "Not placed", 0.0),
        Cell("received", M, "2026-07", "July 2026", 20.0),
        Cell("accepted", Stratifier.TOTAL, "", "All", 30.0),
        Cell("days-to-acceptance", Stratifier.TOTAL, "", "All", 4.5, 2.0, 9.0, n=30),
        Cell("days-to-acceptance", P, "F84002", "Other Practice", None, n=None,
             suppressed=Suppression.SMALL_N),
        Cell("days-to-first-exchange", Stratifier.TOTAL, "", "All", None, n=0),
        Cell("rejected", R, "no-address", REJECTED_LABEL, 10.0),
        Cell("declined", R, "no-capacity", "No room", 15.0),
        Cell("declined", R, "unknown", "Reason not given", 0.0),
    ]  # fmt: skip


REJECTED_LABEL = "SPIS could not read the patient's home postcode"


def wellbeing_cells() -> list[Cell]:
    return [
        Cell("swemwbs-pairs", Stratifier.TOTAL, "", "All", 40.0),
        Cell("swemwbs-change", Stratifier.TOTAL, "", "All", 2.4567, 1.01, 3.9, n=40),
        Cell("swemwbs-change", M, "2026-08", "August 2026", 1.5, -0.25, 3.25, n=20),
        Cell("swemwbs-improved", Stratifier.TOTAL, "", "All", 45.0, n=40),
        Cell("swemwbs-improved-count", Stratifier.TOTAL, "", "All", 20.0),
        Cell("ucla3-declined", Stratifier.TOTAL, "", "All", None, suppressed=Suppression.SMALL_N),
        Cell("ucla3-declined-count", Stratifier.TOTAL, "", "All", None,
             suppressed=Suppression.SMALL_COUNT),
    ]  # fmt: skip


SOCIAL_ASSUMPTIONS = (
    Assumption("value-per-hour", "Value of an hour exchanged", "£12.21 (London Living Wage 2024)"),
    Assumption("wellby", "WELLBY value", "-£13,000 a point-year"),
)


def social_cells() -> list[Cell]:
    return [
        Cell("value-of-hours", Stratifier.TOTAL, "", "All", 12340.0),
        Cell("value-of-wellbeing", Stratifier.TOTAL, "", "All", None,
             suppressed=Suppression.INPUTS),
        Cell("programme-cost", Stratifier.TOTAL, "", "All", None),
    ]  # fmt: skip


# --- Measure ----------------------------------------------------------------------------------


@pytest.mark.parametrize("definition", list(MEASURES.values()), ids=list(MEASURES))
def test_each_measure_is_a_valid_r4_measure_with_a_group_per_figure(
    definition: MeasureDefinition,
) -> None:
    measure = measure_resource(definition, baseline_days=21, min_weeks=6, max_weeks=20)
    Measure.model_validate(measure)
    assert (measure["id"], measure["url"], measure["status"]) == (
        definition.id,
        definition.url,
        "active",
    )
    assert [g["code"]["coding"][0]["code"] for g in measure["group"]] == [
        f.code for f in definition.figures
    ]
    for group, figure in zip(measure["group"], definition.figures, strict=True):
        stratifiers = [s["code"]["coding"][0]["code"] for s in group.get("stratifier", [])]
        assert stratifiers == [s.value for s in figure.stratifiers]
        extensions = {e["url"]: e["valueCodeableConcept"] for e in group["extension"]}
        direction = extensions.get(f"{R5}.improvementNotation")
        assert (direction["coding"][0]["code"] if direction else None) == figure.improvement
        assert f"{R5}.scoring" in extensions


def test_the_cohort_rules_carry_the_configured_windows() -> None:
    measure = measure_resource(WELLBEING, baseline_days=21, min_weeks=6, max_weeks=20)
    [rules] = measure["definition"]
    assert "within 21 days" in rules
    assert "6 to 20 weeks" in rules
    assert "{" not in rules
    guidance = measure["guidance"]
    assert f"1 to {MIN_COUNT - 1}" in guidance
    assert f"nearest {ROUND_TO}" in guidance
    assert f"at least {MIN_N} people" in guidance


def test_scoring_and_populations_follow_the_kind_of_figure() -> None:
    funnel = measure_resource(FUNNEL, baseline_days=30, min_weeks=8, max_weeks=26)
    wellbeing = measure_resource(WELLBEING, baseline_days=30, min_weeks=8, max_weeks=26)
    assert funnel["scoring"]["coding"][0]["code"] == "cohort"
    assert "improvementNotation" not in funnel
    assert wellbeing["scoring"]["coding"][0]["code"] == "continuous-variable"
    assert wellbeing["improvementNotation"]["coding"][0]["code"] == "increase"

    def populations(measure: dict[str, Any], code: str) -> list[str]:
        [group] = [g for g in measure["group"] if g["code"]["coding"][0]["code"] == code]
        return [p["code"]["coding"][0]["code"] for p in group["population"]]

    assert populations(funnel, "received") == ["initial-population"]
    assert populations(funnel, "days-to-acceptance") == [
        "measure-population",
        "measure-observation",
    ]
    assert populations(wellbeing, "swemwbs-improved") == ["denominator", "numerator"]
    social = measure_resource(SOCIAL_VALUE, baseline_days=30, min_weeks=8, max_weeks=26)
    assert populations(social, "social-value") == ["measure-observation"]
    assert "estimate" in social["disclaimer"]
    assert "stratifier" not in social["group"][0]  # no empty arrays


# --- MeasureReport ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "cells"),
    [(FUNNEL, funnel_cells()), (WELLBEING, wellbeing_cells()), (SOCIAL_VALUE, social_cells())],
    ids=["funnel", "wellbeing", "social-value"],
)
def test_every_cell_is_published_as_it_is_in_the_report(
    definition: MeasureDefinition, cells: list[Cell]
) -> None:
    source = report(definition, cells, SOCIAL_ASSUMPTIONS if definition is SOCIAL_VALUE else ())
    published = measure_report(source, base_url="https://spis.example.net/fhir")
    MeasureReport.model_validate(published)
    seen = from_measure_report(published)
    for key, cell in expected(source).items():
        assert seen[key] == cell, key
    csv_seen, _ = from_csv(report_csv(source))
    assert csv_seen == expected(source)


def test_report_header_names_the_board_period_and_measure() -> None:
    published = measure_report(
        report(WELLBEING, wellbeing_cells()), base_url="https://spis.example.net/fhir"
    )
    assert {k: published[k] for k in ("status", "type", "measure", "date")} == {
        "status": "complete",
        "type": "summary",
        "measure": WELLBEING.url,
        "date": "2026-10-02T09:30:00Z",
    }
    assert published["period"] == {"start": "2026-07-01", "end": "2026-09-30"}
    assert published["reporter"] == {
        "reference": "Organization/board-1",
        "display": "South East London ICB",
    }
    assert published["subject"] == {"reference": "Organization/board-1"}
    assert published["improvementNotation"]["coding"][0]["code"] == "increase"
    focused = Report(**{**_fields(report(FUNNEL, [])), "focus": "Organization/practice-9"})
    narrowed = measure_report(focused, base_url="https://spis.example.net/fhir")
    assert narrowed["subject"] == {"reference": "Organization/practice-9"}
    assert "improvementNotation" not in narrowed


def _fields(source: Report) -> dict[str, Any]:
    return {name: getattr(source, name) for name in Report.__slots__}


def test_suppressed_and_empty_numbers_say_why() -> None:
    published = measure_report(report(FUNNEL, funnel_cells()), base_url="https://x/fhir")
    [received] = [g for g in published["group"] if g["code"]["coding"][0]["code"] == "received"]
    practices = received["stratifier"][0]["stratum"]
    masked = practices[1]["population"][0]
    assert "count" not in masked
    assert masked["_count"]["extension"] == [
        {
            "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
            "valueCode": "masked",
        },
        {
            "url": "https://spis.example.org/fhir/StructureDefinition/disclosure-control",
            "valueCode": "small-count",
        },
    ]
    [empty] = [
        g for g in published["group"] if g["code"]["coding"][0]["code"] == "days-to-first-exchange"
    ]
    assert empty["measureScore"] == {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                "valueCode": "not-applicable",
            }
        ]
    }
    assert empty["population"][0]["count"] == 0


def test_strata_name_practices_time_banks_months_and_reasons() -> None:
    published = measure_report(report(FUNNEL, funnel_cells()), base_url="https://x/fhir")
    groups = {g["code"]["coding"][0]["code"]: g for g in published["group"]}
    practice, timebank, month = (s["stratum"][0]["value"] for s in groups["received"]["stratifier"])
    assert practice == {
        "coding": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "code": "F84001"}],
        "text": "Rushey Green Group Practice",
    }
    assert timebank["coding"] == [
        {"system": "https://spis.example.org/fhir/Id/organisation", "code": "tb-1"}
    ]
    assert month == {"text": "2026-07"}
    rejected = groups["rejected"]["stratifier"][3]["stratum"][0]["value"]
    assert rejected["coding"][0] == {
        "system": "https://spis.example.org/fhir/CodeSystem/routing-rejection",
        "code": "no-address",
    }
    declined = [s["value"] for s in groups["declined"]["stratifier"][3]["stratum"]]
    assert declined[0]["coding"][0]["system"].endswith("/CodeSystem/decline-reason")
    assert declined[1] == {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                "code": "unknown",
            }
        ],
        "text": "Reason not given",
    }


def test_a_mean_carries_its_confidence_interval_and_units() -> None:
    published = measure_report(report(WELLBEING, wellbeing_cells()), base_url="https://x/fhir")
    [change] = [g for g in published["group"] if g["code"]["coding"][0]["code"] == "swemwbs-change"]
    assert change["measureScore"] == {
        "value": 2.46,
        "unit": "{score}",
        "system": "http://unitsofmeasure.org",
        "code": "{score}",
    }
    [ci] = change["extension"]
    assert ci["url"] == "https://spis.example.org/fhir/StructureDefinition/measure-score-ci95"
    assert (ci["valueRange"]["low"]["value"], ci["valueRange"]["high"]["value"]) == (1.01, 3.9)
    [share] = [
        g for g in published["group"] if g["code"]["coding"][0]["code"] == "swemwbs-improved"
    ]
    counts = {p["code"]["coding"][0]["code"]: p["count"] for p in share["population"]}
    assert counts == {"denominator": 40, "numerator": 20}
    assert share["measureScore"]["value"] == 45


def test_assumptions_travel_as_report_extensions_and_no_person_does() -> None:
    source = report(SOCIAL_VALUE, social_cells(), SOCIAL_ASSUMPTIONS)
    published = measure_report(source, base_url="https://x/fhir")
    [first, _] = published["extension"]
    assert first["url"] == "https://spis.example.org/fhir/StructureDefinition/estimate-assumption"
    assert {e["url"]: e.get("valueCode", e.get("valueString")) for e in first["extension"]} == {
        "code": "value-per-hour",
        "label": "Value of an hour exchanged",
        "value": "£12.21 (London Living Wage 2024)",
    }
    [money] = [g for g in published["group"] if g["code"]["coding"][0]["code"] == "value-of-hours"]
    assert money["measureScore"] == {
        "value": 12340,
        "unit": "GBP",
        "system": "urn:iso:std:iso:4217",
        "code": "GBP",
    }
    text = json.dumps(published)
    assert "subjectResults" not in text
    assert "Patient" not in text
    assert "[]" not in text  # FHIR JSON has no empty arrays


# --- CSV --------------------------------------------------------------------------------------


def test_csv_is_one_row_per_cell_then_the_assumptions() -> None:
    source = report(SOCIAL_VALUE, social_cells(), SOCIAL_ASSUMPTIONS)
    text = report_csv(source)
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_HEADER
    assert rows[1] == [
        "spis-social-value", "value-of-hours", "Value of hours exchanged", "total", "", "All",
        "12340", "", "", "", "[GBP]", "",
    ]  # fmt: skip
    assert rows[2][6:] == ["", "", "", "", "[GBP]", "masked: inputs-suppressed"]
    assert rows[3][6:] == ["", "", "", "", "[GBP]", ""]  # no cost entered: nothing to report
    assert rows[4][:7] == [
        "spis-social-value", "assumption:value-per-hour", "Value of an hour exchanged", "", "",
        "", "£12.21 (London Living Wage 2024)",
    ]  # fmt: skip
    assert rows[5][6] == "'-£13,000 a point-year"  # text starting with - is guarded
    assert len(rows) == 6
    assert text.endswith("\r\n")


def test_csv_numbers_keep_their_published_precision_and_text_is_guarded() -> None:
    rows = list(csv.DictReader(io.StringIO(report_csv(report(FUNNEL, funnel_cells())))))
    by_key = {(r["figure"], r["stratifier"], r["stratum"]): r for r in rows}
    median = by_key[("days-to-acceptance", "total", "")]
    assert (median["value"], median["low"], median["high"], median["n"]) == (
        "4.5",
        "2.0",
        "9.0",
        "30",
    )
    assert by_key[("received", "timebank", "tb-1")]["stratum_label"] == '\'=HYPERLINK("http://x")'
    assert by_key[("received", "timebank", "none")]["value"] == "0"
    # the total first, then the figure's stratifiers in the Measure's order
    received = [r["stratifier"] for r in rows if r["figure"] == "received"]
    assert received == [
        "total",
        "practice",
        "practice",
        "practice",
        "timebank",
        "timebank",
        "month",
    ]
    mean = list(csv.DictReader(io.StringIO(report_csv(report(WELLBEING, wellbeing_cells())))))
    assert [r["value"] for r in mean if r["figure"] == "swemwbs-change"] == ["2.46", "1.50"]


def test_every_kind_has_a_published_precision() -> None:
    assert set(DECIMALS) == set(FigureKind)
