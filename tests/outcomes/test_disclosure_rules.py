"""Disclosure control on hand-made tables: each rule of referral_service/outcomes/disclosure.py,
and the statistics and precision of statistics.py."""

from __future__ import annotations

import statistics as stdlib_statistics

import pytest
from scipy import stats

from fhir_adapters.measures import (
    Cell,
    Figure,
    FigureKind,
    MeasureDefinition,
    Stratifier,
    Suppression,
)
from referral_service.outcomes.disclosure import (
    Mark,
    Raw,
    disclose,
    estimate,
    rounded,
    suppress_counts,
)
from referral_service.outcomes.statistics import (
    _standard_interval,
    mean_ci,
    median_iqr,
    published,
)

P, M, R = Stratifier.PRACTICE, Stratifier.MONTH, Stratifier.REASON
TOTAL = (Stratifier.TOTAL, "")
PM = (P, M)

MEASURE = MeasureDefinition(
    id="test",
    title="Test",
    description="",
    cohort="",
    figures=(
        Figure("people", "People", FigureKind.COUNT, "{people}", "", PM),
        Figure("hours", "Hours", FigureKind.HOURS, "h", "", PM, base="people"),
        Figure("mean", "Mean", FigureKind.MEAN, "{score}", "", PM, base="people"),
        Figure("median", "Median", FigureKind.MEDIAN, "d", "", PM, base="people"),
        Figure("share", "Share", FigureKind.SHARE, "%", "", PM, base="people", numerator="yes"),
        Figure("ratio", "Ratio", FigureKind.RATIO, "1", "", PM, base="people"),
        Figure("yes", "Yes", FigureKind.COUNT, "{people}", "", PM),
    ),
)


def counts(total: int, **rows: dict[str, int]) -> dict[tuple[Stratifier, str], int]:
    table = {TOTAL: total}
    for name, strata in rows.items():
        table.update({(Stratifier(name), key): value for key, value in strata.items()})
    return table


def shown(marks: dict[tuple[Stratifier, str], Mark | None]) -> set[str]:
    return {key for (_, key), mark in marks.items() if mark is None and key}


@pytest.mark.parametrize(
    ("exact", "published_count"),
    [(0, 0), (8, 10), (9, 10), (10, 10), (12, 10), (13, 15), (17, 15), (18, 20), (102, 100)],
)
def test_counts_of_eight_or_more_are_rounded_to_five_and_zero_stays_zero(
    exact: int, published_count: int
) -> None:
    assert rounded(exact) == published_count
    [cell] = disclose(MEASURE, [Raw("people", *TOTAL, "Total", float(exact))])
    assert (cell.value, cell.suppressed) == (published_count, None)


@pytest.mark.parametrize("exact", range(1, 8))
def test_counts_of_one_to_seven_are_suppressed(exact: int) -> None:
    [cell] = disclose(MEASURE, [Raw("people", *TOTAL, "Total", float(exact))])
    assert (cell.value, cell.suppressed) == (None, Suppression.SMALL_COUNT)


def test_a_lone_small_stratum_takes_the_smallest_shown_non_zero_one_with_it() -> None:
    table = counts(40, practice={"A": 3, "B": 9, "C": 0, "D": 8, "E": 20})
    marks = suppress_counts(table)
    assert marks[(P, "A")] is Mark.SMALL
    assert marks[(P, "D")] is Mark.PROTECTING  # 8 < 9, and the zero is never chosen
    assert shown(marks) == {"B", "C", "E"}
    assert marks[TOTAL] is None


def test_two_small_strata_that_could_both_be_ones_need_a_third() -> None:
    table = counts(21, practice={"A": 1, "B": 1, "C": 9, "D": 10})
    marks = suppress_counts(table)
    assert (marks[(P, "A")], marks[(P, "B")]) == (Mark.SMALL,) * 2
    assert marks[(P, "C")] is Mark.PROTECTING
    assert shown(marks) == {"D"}


def test_two_small_strata_summing_to_more_than_two_protect_each_other() -> None:
    table = counts(25, practice={"A": 1, "B": 4, "C": 20})
    marks = suppress_counts(table)
    assert (marks[(P, "A")], marks[(P, "B")]) == (Mark.SMALL,) * 2
    assert shown(marks) == {"C"}


def test_ties_between_the_smallest_shown_strata_go_to_the_first_key() -> None:
    marks = suppress_counts(counts(30, practice={"Z": 2, "B": 14, "A": 14}))
    assert marks[(P, "A")] is Mark.PROTECTING
    assert marks[(P, "B")] is None


def test_each_stratifier_row_is_protected_on_its_own() -> None:
    table = counts(
        30, practice={"A": 15, "B": 15}, month={"2026-07": 2, "2026-08": 10, "2026-09": 18}
    )
    marks = suppress_counts(table)
    assert shown(marks) == {"A", "B", "2026-09"}
    assert marks[(M, "2026-08")] is Mark.PROTECTING


def test_a_small_total_is_suppressed_itself_and_never_secondarily() -> None:
    table = counts(5, practice={"A": 4, "B": 1}, month={"2026-07": 5})
    marks = suppress_counts(table)
    assert marks[TOTAL] is Mark.SMALL
    assert all(mark is Mark.SMALL for mark in marks.values())
    # Nothing shown to add: the row stays as it is (its total is hidden too).
    assert suppress_counts(counts(2, practice={"A": 1, "B": 1}))[(P, "A")] is (Mark.SMALL)


def test_the_total_is_never_added_as_a_secondary() -> None:
    marks = suppress_counts(counts(9, practice={"A": 1, "B": 8}))
    assert marks[TOTAL] is None
    assert marks[(P, "B")] is Mark.PROTECTING


def raws(figure: str, **cells: tuple[float | None, float | None, float | None]) -> list[Raw]:
    found = []
    for name, (value, low, high) in cells.items():
        stratum = TOTAL if name == "total" else (P, name)
        found.append(Raw(figure, *stratum, name, value, low, high))
    return found


def test_statistics_follow_their_base_count_and_publish_at_their_precision() -> None:
    table = [
        *raws(
            "people",
            total=(20, None, None),
            A=(12, None, None),
            B=(3, None, None),
            C=(5, None, None),
        ),
        *raws(
            "hours",
            total=(10.25, None, None),
            A=(7.04, None, None),
            B=(1, None, None),
            C=(2.21, None, None),
        ),
        *raws("mean", total=(1.005, -0.125, 2.135), A=(1.2, 0.3, 2.1), B=(5, 1, 9), C=(0, 0, 0)),
        *raws("median", total=(2.25, 1.75, 3.25), A=(2.5, 1, 4), B=(1, 1, 1), C=(1, 1, 1)),
        *raws(
            "ratio",
            total=(1.125, None, None),
            A=(None, None, None),
            B=(2, None, None),
            C=(1, None, None),
        ),
    ]
    cells = {(c.figure, c.key): c for c in disclose(MEASURE, table)}
    assert cells["hours", ""] == Cell("hours", Stratifier.TOTAL, "", "total", 10.3, n=20)
    assert cells["hours", "A"].value == 7.0
    assert cells["mean", ""] == Cell(
        "mean", Stratifier.TOTAL, "", "total", 1.01, low=-0.13, high=2.14, n=20
    )
    assert cells["median", ""] == Cell(
        "median", Stratifier.TOTAL, "", "total", 2.3, low=1.8, high=3.3, n=20
    )
    assert cells["ratio", ""].value == 1.13
    # A stratum with a statistic that cannot be computed: no value, not suppressed.
    assert (cells["ratio", "A"].value, cells["ratio", "A"].suppressed, cells["ratio", "A"].n) == (
        None,
        None,
        10,
    )
    # B is 3 (primary), C is 5 (primary): every statistic resting on them is hidden.
    for figure in ("hours", "mean", "median", "ratio"):
        for key in ("B", "C"):
            cell = cells[figure, key]
            assert (cell.value, cell.low, cell.high, cell.n) == (None, None, None, None)
            assert cell.suppressed is Suppression.SMALL_N
    # A is shown (12): its statistics are there, with n as published.
    assert cells["mean", "A"].n == 10


def test_a_statistic_over_a_secondarily_suppressed_count_is_hidden_too() -> None:
    table = [
        *raws(
            "people",
            total=(30, None, None),
            A=(2, None, None),
            B=(9, None, None),
            C=(19, None, None),
        ),
        *raws("mean", total=(1, 0, 2), A=(1, 0, 2), B=(1, 0, 2), C=(1, 0, 2)),
    ]
    cells = {(c.figure, c.key): c for c in disclose(MEASURE, table)}
    assert cells["people", "B"].suppressed is Suppression.SMALL_COUNT
    assert cells["mean", "B"].suppressed is Suppression.SMALL_N
    assert cells["mean", "C"].value == 1.0


def test_no_one_in_a_stratum_means_nothing_to_report_not_suppression() -> None:
    table = [
        *raws("people", total=(0, None, None)),
        *raws("hours", total=(None, None, None)),
        *raws("median", total=(None, None, None)),
    ]
    cells = disclose(MEASURE, table)
    assert [(c.figure, c.value, c.suppressed, c.n) for c in cells] == [
        ("people", 0, None, None),
        ("hours", None, None, 0),
        ("median", None, None, 0),
    ]


@pytest.mark.parametrize(
    ("base", "yes", "expected"),
    [
        (20, 10, 50.0),  # both shown, complement 10
        (20, 0, 0.0),  # numerator zero is shown; complement 20
        (20, 20, 100.0),  # complement zero
        (16, 9, None),  # complement 7 would be recoverable from the share
        (9, 8, None),  # complement 1
        (20, 5, None),  # numerator suppressed
        (7, 0, None),  # base suppressed
    ],
)
def test_a_share_needs_its_numerator_shown_and_its_complement_not_small(
    base: int, yes: int, expected: float | None
) -> None:
    table = [
        *raws("people", total=(base, None, None)),
        *raws("yes", total=(yes, None, None)),
        *raws("share", total=(100 * yes / base, None, None)),
    ]
    [share] = [c for c in disclose(MEASURE, table) if c.figure == "share"]
    assert share.value == expected
    assert share.suppressed is (None if expected is not None else Suppression.SMALL_N)
    assert share.n == (rounded(base) if expected is not None else None)


def test_a_share_is_published_in_whole_percent() -> None:
    table = [
        *raws("people", total=(24, None, None)),
        *raws("yes", total=(9, None, None)),
        *raws("share", total=(37.5, None, None)),
    ]
    [share] = [c for c in disclose(MEASURE, table) if c.figure == "share"]
    assert share.value == 38.0  # half away from zero


def test_cells_come_in_figure_order_then_total_practice_month_reason_by_key() -> None:
    table = [
        Raw("yes", M, "2026-07", "July 2026", 0),
        Raw("people", P, "B", "B", 0),
        Raw("people", M, "2026-07", "July 2026", 0),
        Raw("yes", *TOTAL, "Total", 0),
        Raw("people", P, "A", "A", 0),
        Raw("people", *TOTAL, "Total", 0),
    ]
    order = [(c.figure, c.stratifier, c.key) for c in disclose(MEASURE, table)]
    assert order == [
        ("people", Stratifier.TOTAL, ""),
        ("people", P, "A"),
        ("people", P, "B"),
        ("people", M, "2026-07"),
        ("yes", Stratifier.TOTAL, ""),
        ("yes", M, "2026-07"),
    ]


MONEY = Figure("value", "Value", FigureKind.MONEY, "[GBP]", "", ())
SHOWN = Cell("hours", Stratifier.TOTAL, "", "Total", 12.5, n=10)
HIDDEN = Cell("hours", Stratifier.TOTAL, "", "Total", None, suppressed=Suppression.SMALL_N)
EMPTY = Cell("hours", Stratifier.TOTAL, "", "Total", None)


def test_money_rests_on_its_inputs() -> None:
    assert estimate(MONEY, 1234.5, [SHOWN, SHOWN]).value == 1235.0
    assert estimate(MONEY, -2.5, [SHOWN]).value == -3.0
    hidden = estimate(MONEY, 1234.5, [SHOWN, HIDDEN])
    assert (hidden.value, hidden.suppressed) == (None, Suppression.INPUTS)
    assert estimate(MONEY, 1234.5, [SHOWN, EMPTY]) == Cell(
        "value", Stratifier.TOTAL, "", "Total", None
    )
    assert estimate(MONEY, 1234.5, [SHOWN, None]).value is None  # e.g. no cost entered
    # Suppression wins over a missing input: the reader learns why.
    assert estimate(MONEY, None, [HIDDEN, None]).suppressed is Suppression.INPUTS


def test_money_is_not_a_statistic_disclose_computes() -> None:
    measure = MeasureDefinition("m", "M", "", "", (MONEY,))
    with pytest.raises(ValueError, match="estimate"):
        disclose(measure, [Raw("value", *TOTAL, "Total", 1.0)])


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (FigureKind.HOURS, 12.25, 12.3),
        (FigureKind.HOURS, 12.35, 12.4),
        (FigureKind.MEAN, 1.005, 1.01),
        (FigureKind.MEAN, -1.005, -1.01),
        (FigureKind.MEDIAN, 2.25, 2.3),
        (FigureKind.SHARE, 12.5, 13.0),
        (FigureKind.RATIO, 0.125, 0.13),
        (FigureKind.MONEY, 341.88, 342.0),
        (FigureKind.MONEY, 2.5, 3.0),
    ],
)
def test_published_precision_rounds_half_away_from_zero(
    kind: FigureKind, value: float, expected: float
) -> None:
    assert published(value, kind) == expected


def test_mean_ci_is_scipys_t_interval() -> None:
    values = [1.0, 2.0, 2.0, 3.5, 4.0, 4.5, 7.0, 9.25, 0.5]
    mean, low, high = mean_ci(values)  # type: ignore[misc]
    n = len(values)
    sd = stdlib_statistics.stdev(values)
    expected = stats.t.interval(0.95, n - 1, loc=mean, scale=sd / n**0.5)
    assert mean == pytest.approx(sum(values) / n)
    assert (low, high) == pytest.approx(expected, abs=1e-12)
    assert mean_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)  # no spread: scipy would give NaN
    assert mean_ci([3.0]) == (3.0, None, None)
    assert mean_ci([]) is None


def test_the_standard_interval_is_scipys_to_the_last_bit() -> None:
    for df in [*range(1, 400), 999, 1_000, 12_345, 10**6, 10**9]:
        assert _standard_interval(df) == tuple(float(x) for x in stats.t.interval(0.95, df)), df


def test_median_and_quartiles_use_the_inclusive_method() -> None:
    assert median_iqr([float(d) for d in range(1, 11)]) == (5.5, 3.25, 7.75)
    assert median_iqr([3.0, 1.0]) == (2.0, 1.5, 2.5)
    assert median_iqr([1.0]) is None
