"""The independent calculation against the product, on a population made through SPIS's real API
(`independent_population.py`: referrals backdated by the practices' own Tasks, routing's
rejections, time banks' declines and re-routing, enrolments, exchanges and reversals through the
ledger API, every instrument's questionnaires): the outcome rows the triggers' refresh jobs keep
equal the ones derived independently, and every published cell equals the independent figure."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine

from fhir_adapters.measures import (
    COPRODUCTION,
    FUNNEL,
    MEASURES,
    SOCIAL_VALUE,
    WELLBEING,
    FigureKind,
    Stratifier,
)
from tests.fixtures.systems import bearer
from tests.outcomes import independent_product as product
from tests.outcomes.independent_compare import compare, row_differences
from tests.outcomes.independent_datasets import Dataset, api_dataset
from tests.outcomes.independent_disclosure import calculate
from tests.outcomes.independent_rows import derive


@pytest.fixture(scope="module")
def data(
    pg_engine: Engine, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dataset]:
    found = api_dataset(pg_engine, pg_url, Path(tmp_path_factory.mktemp("api")))
    yield found
    assert found.client is not None
    found.client.__exit__(None, None, None)


def test_the_rows_the_refresh_jobs_keep_equal_those_derived_from_the_raw_data(
    data: Dataset,
) -> None:
    derived = derive(data.raw, data.settings)
    mine = {name: getattr(derived, name) for name in product.TABLES}
    keys = {name: key for name, (_, key) in product.TABLES.items()}
    assert row_differences(mine, data.rows, keys) == []
    sizes = {name: len(frame) for name, frame in data.rows.items()}
    assert sizes["referrals"] == 60
    assert min(sizes.values()) > 5, sizes


AUTUMN = (date(2026, 9, 1), date(2026, 11, 30))
NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))
FOLLOW_UPS = (date(2027, 1, 1), date(2027, 6, 30))  # the follow-ups 8 to 26 weeks on
REPORTS = [
    (FUNNEL.id, AUTUMN),
    (FUNNEL.id, NOVEMBER),
    (COPRODUCTION.id, AUTUMN),
    (COPRODUCTION.id, NOVEMBER),
    (WELLBEING.id, FOLLOW_UPS),
    (SOCIAL_VALUE.id, AUTUMN),
]
AT_LEAST = {FUNNEL.id: 8, COPRODUCTION.id: 6, WELLBEING.id: 4, SOCIAL_VALUE.id: 1}


@pytest.mark.parametrize(("measure_id", "period"), REPORTS, ids=lambda v: str(v))
def test_every_published_cell_equals_the_independent_figure(
    data: Dataset, measure_id: str, period: tuple[date, date]
) -> None:
    start, end = period
    report = product.report(data.sessions, data.settings, measure_id, start, end, data.board)
    found, mine = calculate(
        data.raw, data.settings, MEASURES[measure_id], data.board.org_id, start, end
    )
    checked = compare(report, found, mine)
    assert checked.problems == []
    assert checked.compared >= AT_LEAST[measure_id], (checked.compared, checked.hidden)


@pytest.mark.parametrize(("measure_id", "period"), REPORTS, ids=lambda v: str(v))
def test_the_fhir_report_and_its_csv_publish_the_independent_figures(
    data: Dataset, measure_id: str, period: tuple[date, date]
) -> None:
    """Over the edge, as the board's SMART client: the CSV's cells are the independent figures,
    and the MeasureReport's group totals are the CSV's."""
    assert data.client is not None
    start, end = period
    headers = bearer(data.client, data.board)
    text = product.fhir_report(data.client, headers, measure_id, start, end, csv=True)
    cells = product.csv_cells(text)
    domain = product.report(data.sessions, data.settings, measure_id, start, end, data.board)
    found, mine = calculate(
        data.raw, data.settings, MEASURES[measure_id], data.board.org_id, start, end
    )
    checked = compare(replace(domain, cells=tuple(cells)), found, mine)
    assert checked.problems == []
    assert checked.compared >= AT_LEAST[measure_id]
    resource = json.loads(product.fhir_report(data.client, headers, measure_id, start, end))
    totals = {c.figure: c for c in cells if c.stratifier is Stratifier.TOTAL}
    for group in resource["group"]:
        cell = totals[group["code"]["coding"][0]["code"]]
        shown = group.get("measureScore", {}).get("value")
        if MEASURES[measure_id].figure(cell.figure).kind is FigureKind.COUNT:
            shown = group["population"][0].get("count")
        assert shown == cell.value, (cell, group)
