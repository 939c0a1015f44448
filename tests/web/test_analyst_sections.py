"""The analyst's report page from hand-made Reports (no engine): how each cell is written, the
tables and charts each measure gets, and the rendered page (every chart beside a table with the
same numbers, masked cells written as masked, nothing about a person)."""

from __future__ import annotations

import re
from datetime import date
from types import SimpleNamespace

from fhir_adapters.measures import (
    COPRODUCTION,
    FUNNEL,
    SOCIAL_VALUE,
    WELLBEING,
    Cell,
    Figure,
    FigureKind,
    Report,
    Stratifier,
    Suppression,
)
from referral_service.web import analyst_period as periods
from referral_service.web import analyst_sections as sections
from referral_service.web.analyst_cells import Cells, range_text, strata_table, value_text
from referral_service.web.analyst_page import Chooser, ReportPage
from referral_service.web.analyst_period import Period
from referral_service.web.render import environment
from tests.web.analyst_reports import END, START, page_cells, report

THRESHOLDS = {"swemwbs": 3.0, "ucla3": 1.0}


def figure(kind: FigureKind, code: str = "x") -> Figure:
    return Figure(code, "X", kind, "1", "", ())


def one(kind: FigureKind, value: float | None, **more: object) -> str:
    cell = Cell("x", Stratifier.TOTAL, "", "", value, **more)  # type: ignore[arg-type]
    return value_text(cell, figure(kind))


def test_each_kind_is_written_at_its_published_precision() -> None:
    assert one(FigureKind.COUNT, 1240.0) == "1,240"
    assert one(FigureKind.HOURS, 1234.5) == "1,234.5"
    assert one(FigureKind.MEDIAN, 14.0) == "14.0"
    assert one(FigureKind.SHARE, 45.0) == "45%"
    assert one(FigureKind.RATIO, 1.2) == "1.20"
    assert one(FigureKind.MONEY, 12345.0) == "£12,345"
    assert one(FigureKind.MEAN, 3.4) == "3.40"
    change = Cell("swemwbs-change", Stratifier.TOTAL, "", "", 2.3)
    assert value_text(change, WELLBEING.figure("swemwbs-change")) == "+2.30"
    ci = Cell("swemwbs-change", Stratifier.TOTAL, "", "", 2.3, low=-0.5, high=5.1)
    assert range_text(ci, WELLBEING.figure("swemwbs-change")) == "-0.50 to 5.10"
    iqr = Cell("days-to-acceptance", Stratifier.TOTAL, "", "", 9.0, low=4.0, high=21.5)
    assert range_text(iqr, FUNNEL.figure("days-to-acceptance")) == "4.0 to 21.5"


def test_a_suppressed_cell_says_why_and_an_empty_one_says_so() -> None:
    said = {rule: one(FigureKind.COUNT, None, suppressed=rule) for rule in Suppression}
    assert said == {
        Suppression.SMALL_COUNT: "masked — small number",
        Suppression.SMALL_N: "masked — fewer than 8 people",
        Suppression.INPUTS: "masked — rests on a masked figure",
    }
    assert one(FigureKind.COUNT, None) == "no data"
    cost = Cell("programme-cost", Stratifier.TOTAL, "", "", None)
    assert value_text(cost, SOCIAL_VALUE.figure("programme-cost")) == "not entered"


def test_a_strata_table_has_the_total_first_then_its_strata_in_reading_order() -> None:
    cells = Cells(report(FUNNEL))
    table = strata_table(
        cells,
        "By practice",
        ("received", "days-to-acceptance"),
        Stratifier.PRACTICE,
        total_label="Whole board",
    )
    assert table.head == (
        "Practice",
        "Referred",
        "Days from referral to acceptance",
        "Interquartile range (days from referral to acceptance)",
    )
    assert [row.label for row in table.rows] == [
        "Whole board",
        "Other Practice",
        "Rushey Green Group Practice",
    ]
    assert [c.text for c in table.rows[0].cells] == ["40", "14.0", "7.0 to 21.0"]
    masked = table.rows[1].cells
    assert [(c.text, c.masked) for c in masked] == [
        ("masked — small number", True),
        ("masked — fewer than 8 people", True),
        ("masked — fewer than 8 people", True),
    ]
    months = strata_table(cells, "By month", ("received",), Stratifier.MONTH)
    assert [row.label for row in months.rows] == ["July 2026", "August 2026", "September 2026"]


def test_a_stratum_one_figure_lacks_is_not_reported_rather_than_zero() -> None:
    base = report(FUNNEL)
    cut = Report(
        **{
            **{f: getattr(base, f) for f in base.__dataclass_fields__},
            "cells": tuple(
                c for c in base.cells if not (c.figure == "routed" and c.key == "2026-08")
            ),
        }
    )
    table = strata_table(Cells(cut), "m", ("received", "routed"), Stratifier.MONTH)
    august = next(row for row in table.rows if row.label == "August 2026")
    assert [c.text for c in august.cells] == ["10", "not reported"]


def test_the_funnel_chart_draws_the_same_numbers_as_its_table() -> None:
    funnel = sections.funnel(report(FUNNEL), "Whole board")
    stages = funnel.blocks[0]
    assert stages.chart is not None
    table_values = [row.cells[0].text for row in stages.table.rows]
    drawn = re.findall(r'data-value="([^"]+)"', str(stages.chart))
    assert [float(v) for v in drawn] == [float(t) for t in table_values]
    assert [row.label for row in stages.table.rows] == [
        "Referred",
        "Routed to a time bank",
        "Accepted by a time bank",
        "First exchange of time",
        "Completed",
    ]
    rejected = funnel.blocks[1]
    assert "SPIS could not read the patient&#39;s home postcode" in str(rejected.chart)
    assert rejected.table.rows[0].label == "All reasons"
    assert (
        rejected.more_summary == "Could not be placed, by reason: by practice, time bank and month"
    )


def test_each_scale_has_a_dot_and_whisker_chart_with_its_direction() -> None:
    wellbeing = sections.wellbeing(report(WELLBEING), "Whole board", THRESHOLDS)
    by_id = {block.id: block for block in wellbeing.blocks}
    assert list(by_id) == [
        "wellbeing-swemwbs",
        "wellbeing-wemwbs",
        "wellbeing-ons4-life-satisfaction",
        "wellbeing-ons4-worthwhile",
        "wellbeing-ons4-happy",
        "wellbeing-ons4-anxiety",
        "wellbeing-ucla3",
    ]
    swemwbs = by_id["wellbeing-swemwbs"]
    assert swemwbs.notes == (
        "Higher scores are better: a rise is an improvement.",
        "A meaningful change is one of at least 3 points.",
    )
    assert by_id["wellbeing-ucla3"].notes[0] == "Lower scores are better: a fall is an improvement."
    assert by_id["wellbeing-ons4-anxiety"].notes == (
        "Lower scores are better: a fall is an improvement.",
    )
    chart = str(swemwbs.chart)
    assert "Whole board: +2.35 (95% CI 1.10 to 3.60)" in chart
    assert re.findall(r'<circle[^>]*data-value="([^"]+)"', chart) == [
        "2.35",
        "1.18",
        "0.59",
        "0.39",
    ]


def test_a_scale_no_one_has_scores_for_says_so_instead_of_an_empty_chart() -> None:
    base = report(WELLBEING)
    cells = tuple(
        Cell(c.figure, c.stratifier, c.key, c.label, 0.0)
        if c.figure == "wemwbs-pairs"
        else Cell(c.figure, c.stratifier, c.key, c.label, None)
        if c.figure.startswith("wemwbs-")
        else c
        for c in base.cells
    )
    empty = Report(**{**{f: getattr(base, f) for f in base.__dataclass_fields__}, "cells": cells})
    blocks = {b.id: b for b in sections.wellbeing(empty, "Whole board", THRESHOLDS).blocks}
    assert blocks["wellbeing-wemwbs"].chart is None
    assert blocks["wellbeing-wemwbs"].notes[-1] == (
        "No one had both a baseline and a follow-up score in this period."
    )
    assert blocks["wellbeing-wemwbs"].table.rows[0].cells[0].text == "0"
    assert blocks["wellbeing-swemwbs"].chart is not None


def test_hours_by_month_are_grouped_bars_beside_a_table_of_the_same_hours() -> None:
    hours = sections.coproduction(report(COPRODUCTION), "Whole board").blocks[0]
    chart = str(hours.chart)
    months = [row for row in hours.table.rows if not row.total]
    drawn = [float(v) for v in re.findall(r'data-value="([^"]+)"', chart)]
    in_table = [float(row.cells[i].text.replace(",", "")) for row in months for i in (1, 2)]
    assert drawn == in_table
    assert "July 2026: Given 60.2, Received 60.2" in chart


# -- the page ------------------------------------------------------------------------------------


def rendered(*reports: Report, errors: dict[str, str] | None = None) -> str:
    scope = "Whole board"
    period = Period(START, END)
    page = ReportPage(
        board_name="South East London ICB",
        period=period,
        focus="",
        scope=scope,
        generated_at=reports[0].generated_at,
        sections=tuple(
            sections.funnel(r, scope)
            if r.measure is FUNNEL
            else sections.coproduction(r, scope)
            if r.measure is COPRODUCTION
            else sections.wellbeing(r, scope, THRESHOLDS)
            if r.measure is WELLBEING
            else sections.social_value(r, scope)
            for r in reports
        ),
        cohorts={r.measure.id: r.measure.cohort_text(30, 8, 26) for r in reports},
        csv_urls={r.measure.id: f"/analyst/report.csv?measure={r.measure.id}" for r in reports},
        chooser=Chooser(
            "2026-Q3",
            "",
            "",
            "",
            periods.choices(date(2026, 10, 2)),
            [("Board", [("", "The whole board")])],
        ),
        amount="",
    )
    viewer = SimpleNamespace(organisation=SimpleNamespace(name="South East London ICB"))
    return environment.get_template("analyst/report.html").render(
        viewer=viewer,
        csrf_token="tok",
        current_path="/analyst/report",
        nav=[],
        role_label="Health board analyst",
        errors=errors or {},
        form_error=None,
        notices=[],
        page=page,
        chooser=page.chooser,
    )


ALL = (FUNNEL, COPRODUCTION, WELLBEING, SOCIAL_VALUE)


def test_the_page_writes_every_cell_of_every_report_in_a_table() -> None:
    reports = [report(m) for m in ALL]
    html = rendered(*reports)
    on_page = page_cells(html)
    for r in reports:
        for cell in r.cells:
            texts = on_page.get((cell.figure, cell.stratifier.value, cell.key, "value"))
            assert texts, (
                f"{r.measure.id} {cell.figure} {cell.stratifier} {cell.key} is in no table"
            )
            assert texts == {value_text(cell, r.measure.figure(cell.figure))}


def test_masked_cells_are_written_as_masked_and_never_as_a_number() -> None:
    html = rendered(*(report(m) for m in ALL))
    on_page = page_cells(html)
    masked = {place: texts for place, texts in on_page.items() if place[2] == "F84002"}
    assert masked
    for place, texts in masked.items():
        assert all(t.startswith("masked — ") for t in texts), place
    assert on_page[("received", "practice", "F84002", "value")] == {"masked — small number"}
    assert on_page[("swemwbs-change", "practice", "F84002", "range")] == {
        "masked — fewer than 8 people"
    }
    assert on_page[("value-of-hours", "total", "", "value")] == {"£12,345"}
    assert on_page[("programme-cost", "total", "", "value")] == {"not entered"}
    assert 'class="disclosure' not in html  # the note is an aside with its own heading
    assert "How small numbers are protected" in html


def test_every_chart_sits_beside_a_table_and_names_itself() -> None:
    html = rendered(*(report(m) for m in ALL))
    bodies = re.findall(r'<div class="analyst-block__body[^"]*">(.*?)</table>', html, re.S)
    charted = [body for body in bodies if "<svg" in body]
    assert len(charted) == html.count("<svg")  # no chart outside a block with its table
    assert len(charted) == 3 + 1 + 7 + 1  # funnel stages and two reasons; hours; 7 scales; value
    ids = re.findall(r'<svg[^>]* id="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    for chart_id in ids:
        assert f'aria-labelledby="{chart_id}-title {chart_id}-desc"' in html


def test_the_page_links_to_no_person_and_offers_csv_and_the_cost_form() -> None:
    html = rendered(*(report(m) for m in ALL))
    links = re.findall(r'href="([^"]+)"', html)
    assert not [link for link in links if link.startswith(("/practice", "/broker", "/fhir"))]
    assert [link for link in links if ".csv" in link] == [
        f"/analyst/report.csv?measure={m.id}" for m in ALL
    ]
    assert '<form class="form" method="post" action="/analyst/cost"' in html
    assert '<input type="hidden" name="start" value="2026-07-01">' in html
    assert '<input type="hidden" name="csrf_token" value="tok">' in html
    assert "Value of an hour" in html  # the assumptions are spelled out


def test_a_cost_error_is_named_beside_the_field_and_in_the_summary() -> None:
    html = rendered(report(SOCIAL_VALUE), errors={"amount": "Enter the programme cost in pounds"})
    assert '<a href="#amount">Enter the programme cost in pounds</a>' in html
    assert 'id="amount-error"' in html
