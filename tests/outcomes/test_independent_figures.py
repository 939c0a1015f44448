"""The independent calculation against the product, on `spis synth`'s data set (a few hundred
referrals over twelve months, fixed seed): the outcome rows the product keeps equal the ones
derived independently from the raw resources and ledger, and every published cell of every
measure, for the total and every stratum, equals the independent figure (issue 10, "Tests")."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine

from fhir_adapters.measures import COPRODUCTION, FUNNEL, MEASURES, SOCIAL_VALUE, WELLBEING
from tests.outcomes import independent_product as product
from tests.outcomes.independent_compare import compare, row_differences
from tests.outcomes.independent_datasets import Dataset, synth_dataset
from tests.outcomes.independent_disclosure import calculate
from tests.outcomes.independent_rows import derive


@pytest.fixture(scope="module")
def data(pg_engine: Engine, pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return synth_dataset(pg_engine, pg_url, Path(tmp_path_factory.mktemp("synth")))


def test_the_outcome_rows_equal_those_derived_from_the_raw_data(data: Dataset) -> None:
    derived = derive(data.raw, data.settings)
    mine = {name: getattr(derived, name) for name in product.TABLES}
    keys = {name: key for name, (_, key) in product.TABLES.items()}
    assert row_differences(mine, data.rows, keys) == []
    # the data set has every kind of row, so the comparison is not vacuous
    sizes = {name: len(frame) for name, frame in data.rows.items()}
    assert sizes["referrals"] == 400
    assert min(sizes.values()) > 30, sizes


# Periods inside the synthetic year (November 2025 to 28 November 2026): the whole year, a
# quarter, a month, and one that cuts months; the quarter also has a programme cost entered for
# the social value.
YEAR = (date(2025, 12, 1), date(2026, 11, 30))
QUARTER = (date(2026, 4, 1), date(2026, 6, 30))
MONTH = (date(2026, 9, 1), date(2026, 9, 30))
# A period that cuts months: April and May count for the monthly activity, March does not.
CUT = (date(2026, 3, 15), date(2026, 5, 20))
REPORTS = [
    (measure.id, period)
    for measure in (FUNNEL, COPRODUCTION, WELLBEING, SOCIAL_VALUE)
    for period in (YEAR, QUARTER, MONTH, CUT)
]
# The fewest unsuppressed cells each report must have had compared: none passes by comparing
# nothing (a month of a few hundred referrals still publishes its totals and larger strata).
AT_LEAST = {FUNNEL.id: 20, COPRODUCTION.id: 15, WELLBEING.id: 10, SOCIAL_VALUE.id: 3}


@pytest.mark.parametrize(("measure_id", "period"), REPORTS, ids=lambda v: str(v))
def test_every_published_cell_equals_the_independent_figure(
    data: Dataset, measure_id: str, period: tuple[date, date]
) -> None:
    start, end = period
    if measure_id == SOCIAL_VALUE.id and period == QUARTER:
        product.set_cost(data.sessions, data.settings, data.board, start, end, 4_000_000)
        data.reread()
    report = product.report(data.sessions, data.settings, measure_id, start, end, data.board)
    found, mine = calculate(data.raw, data.settings, MEASURES[measure_id], data.board.org_id,
                            start, end)  # fmt: skip
    checked = compare(report, found, mine)
    assert checked.problems == []
    assert checked.compared >= AT_LEAST[measure_id], (checked.compared, checked.hidden)


@pytest.mark.parametrize("measure_id", [m.id for m in (FUNNEL, COPRODUCTION, WELLBEING)])
def test_a_report_narrowed_to_a_practice_or_time_bank_equals_the_independent_figures(
    data: Dataset, measure_id: str
) -> None:
    """`subject` = one of the board's practices or time banks: each such report, for the year,
    is that stratum's figures with its own disclosure control."""
    orgs = data.raw.organisations
    area = orgs[(orgs["board_id"] == data.board.org_id) & orgs["kind"].isin(["practice",
                                                                              "timebank"])]  # fmt: skip
    assert len(area) == 9  # synth's six practices and three time banks
    compared, problems = 0, []
    for org_id in area["id"]:
        focus = f"Organization/{org_id}"
        report = product.report(data.sessions, data.settings, measure_id, *YEAR, data.board, focus)
        found, mine = calculate(data.raw, data.settings, MEASURES[measure_id],
                                data.board.org_id, *YEAR, focus)  # fmt: skip
        checked = compare(report, found, mine)
        compared += checked.compared
        problems += [f"{focus}: {p}" for p in checked.problems]
    assert problems == []
    assert compared >= 9 * AT_LEAST[measure_id]
