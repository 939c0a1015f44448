"""How the analyst's pages write a report's cells, and the tables they are laid out in.

One formatting for tables and charts alike: a chart's labels are the table's texts. A suppressed
cell says so and why ("masked — small number"), never a zero; a cell with nothing to report says
"no data" ("not entered" for a programme cost the board has not given). Published precision is the
report's (disclosure control rounded it already): counts whole, hours one decimal, means and their
confidence intervals two, medians and quartiles one, shares whole percent, ratios two, money whole
pounds.

Each table cell carries the figure, stratifier and stratum it shows (`data-*` on the page), so a
reader of the HTML (and the browser test) can match it with the same cell of the API's report.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from fhir_adapters.measures import Cell, Figure, FigureKind, Report, Stratifier, Suppression

MASKED: dict[Suppression, str] = {
    # A small count, or one hidden with it: shown alike, as they are published alike.
    Suppression.SMALL_COUNT: "masked — small number",
    Suppression.SMALL_N: "masked — fewer than 8 people",
    Suppression.INPUTS: "masked — rests on a masked figure",
}
NO_DATA = "no data"
NOT_ENTERED = "not entered"
NOT_REPORTED = "not reported"
NEEDS_COST = "needs the programme cost"
_ABSENT = frozenset({NO_DATA, NOT_ENTERED, NOT_REPORTED, NEEDS_COST})
STRATIFIER_TITLES: dict[Stratifier, str] = {
    Stratifier.TOTAL: "Total",
    Stratifier.PRACTICE: "Practice",
    Stratifier.TIMEBANK: "Time bank",
    Stratifier.MONTH: "Month",
    Stratifier.REASON: "Reason",
}
# What a figure with nothing to report says, where "no data" would not be the reason.
_NOTHING = {"programme-cost": NOT_ENTERED, "social-return": NEEDS_COST}
# Statistics whose range gets a column of its own beside the value.
_RANGE_NAMES = {FigureKind.MEAN: "95% CI", FigureKind.MEDIAN: "Interquartile range"}


@dataclass(frozen=True, slots=True)
class Shown:
    """One cell as a table writes it. `part` is which of the cell's numbers it is: "value",
    "range" (low to high) or "n"."""

    text: str
    figure: str
    stratifier: str
    key: str
    part: str = "value"
    masked: bool = False
    absent: bool = False  # no number to show: "no data", "not entered", "not reported"


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    cells: tuple[Shown, ...]
    total: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    caption: str
    head: tuple[str, ...]  # the first column's heading, then one per cell column
    rows: tuple[Row, ...]
    by: Stratifier = Stratifier.TOTAL  # what the rows are, for a strata table


def value_text(cell: Cell, figure: Figure) -> str:
    if cell.suppressed is not None:
        return MASKED[cell.suppressed]
    if cell.value is None:
        return _NOTHING.get(figure.code, NO_DATA)
    return number_text(cell.value, figure)


def number_text(value: float, figure: Figure) -> str:
    kind = figure.kind
    if kind is FigureKind.COUNT:
        return f"{round(value):,}"
    if kind is FigureKind.HOURS:
        return f"{value:,.1f}"
    if kind is FigureKind.MEAN:
        return f"{value:+.2f}" if figure.code.endswith("-change") else f"{value:.2f}"
    if kind is FigureKind.MEDIAN:
        return f"{value:.1f}"
    if kind is FigureKind.SHARE:
        return f"{value:.0f}%"
    if kind is FigureKind.RATIO:
        return f"{value:.2f}"
    return f"£{value:,.0f}"


def range_text(cell: Cell, figure: Figure) -> str:
    """A mean's 95% confidence interval or a median's interquartile range: "1.10 to 3.60"."""
    if cell.suppressed is not None:
        return MASKED[cell.suppressed]
    if cell.low is None or cell.high is None:
        return NO_DATA
    places = 2 if figure.kind is FigureKind.MEAN else 1
    return f"{cell.low:.{places}f} to {cell.high:.{places}f}"


def shown(cell: Cell, figure: Figure, part: str = "value") -> Shown:
    if part == "range":
        text = range_text(cell, figure)
    elif part == "n":
        text = MASKED[cell.suppressed] if cell.suppressed else _n_text(cell)
    else:
        text = value_text(cell, figure)
    return Shown(
        text,
        cell.figure,
        cell.stratifier.value,
        cell.key,
        part,
        masked=cell.suppressed is not None,
        absent=cell.suppressed is None and text in _ABSENT,
    )


def missing(figure: str, stratifier: Stratifier, key: str, part: str = "value") -> Shown:
    """A stratum the report has no cell for (another figure of the same table has one)."""
    return Shown(NOT_REPORTED, figure, stratifier.value, key, part, absent=True)


def _n_text(cell: Cell) -> str:
    return NO_DATA if cell.n is None else f"{cell.n:,}"


# -- tables --------------------------------------------------------------------------------------


class Cells:
    """A report's cells by (figure, stratifier, key): the tables look up thousands of them."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self._by_place = {(c.figure, c.stratifier, c.key): c for c in report.cells}

    def get(
        self, code: str, stratifier: Stratifier = Stratifier.TOTAL, key: str = ""
    ) -> Cell | None:
        return self._by_place.get((code, stratifier, key))

    def figure(self, code: str) -> Figure:
        return self.report.measure.figure(code)


def columns(cells: Cells, codes: Sequence[str]) -> list[tuple[Figure, str]]:
    """The columns of a strata table: each figure's value, then its range if it has one."""
    found: list[tuple[Figure, str]] = []
    for code in codes:
        figure = cells.figure(code)
        found.append((figure, "value"))
        if figure.kind in _RANGE_NAMES:
            found.append((figure, "range"))
    return found


def column_title(figure: Figure, part: str) -> str:
    """A column's heading: the figure's title without the scale's name (the caption says it);
    a range names its figure, without what the title explains in brackets."""
    short = _short(figure)
    if part == "range":
        return f"{_RANGE_NAMES[figure.kind]} ({_BRACKETED.sub('', short).lower()})"
    return short[:1].upper() + short[1:]


def strata_table(
    cells: Cells,
    caption: str,
    codes: Sequence[str],
    stratifier: Stratifier,
    *,
    total_label: str | None = None,
) -> Table:
    """One row per stratum of `stratifier` (with the total first when `total_label` is given),
    one column per figure (and its range). Strata are those any of the figures has a cell for."""
    cols = columns(cells, codes)
    keys = strata(cells, codes, stratifier)
    rows = [_strata_row(cells, cols, stratifier, key, label) for key, label in keys]
    if total_label is not None:
        rows.insert(0, _strata_row(cells, cols, Stratifier.TOTAL, "", total_label, total=True))
    head = (STRATIFIER_TITLES[stratifier], *(column_title(f, part) for f, part in cols))
    return Table(caption, head, tuple(rows), stratifier)


def figures_table(cells: Cells, caption: str, codes: Sequence[str]) -> Table:
    """The whole report's figures, one per row: the value, then the range and the number of
    people a statistic rests on when any of the figures has them."""
    figures = [cells.figure(code) for code in codes]
    parts = ["value"]
    if any(f.kind in _RANGE_NAMES for f in figures):
        parts.append("range")
    if any(f.base is not None for f in figures):
        parts.append("n")
    rows = [Row(f.title, tuple(_figure_part(cells, f, part) for part in parts)) for f in figures]
    ranges = {_RANGE_NAMES[f.kind] for f in figures if f.kind in _RANGE_NAMES}
    titles = _PART_TITLES | ({"range": ranges.pop()} if len(ranges) == 1 else {})
    head = ("Figure", *(titles[part] for part in parts))
    return Table(caption, head, tuple(rows))


_PART_TITLES = {
    "value": "Value",
    "range": "Range (95% CI of a mean, interquartile range of a median)",
    "n": "People it rests on",
}


def _figure_part(cells: Cells, figure: Figure, part: str) -> Shown:
    cell = cells.get(figure.code)
    if cell is None:
        return missing(figure.code, Stratifier.TOTAL, "", part)
    if (part == "range" and figure.kind not in _RANGE_NAMES) or (
        part == "n" and figure.base is None
    ):
        return Shown("", figure.code, cell.stratifier.value, "", "blank")
    return shown(cell, figure, part)


def strata(cells: Cells, codes: Sequence[str], stratifier: Stratifier) -> list[tuple[str, str]]:
    """(key, label) of every stratum of `stratifier` the figures have: months by date, the
    rest by label."""
    seen: dict[str, str] = {}
    wanted = set(codes)
    for cell in cells.report.cells:
        if cell.stratifier is stratifier and cell.figure in wanted:
            seen.setdefault(cell.key, cell.label or cell.key)
    if stratifier is Stratifier.MONTH:
        return sorted(seen.items())
    return sorted(seen.items(), key=lambda item: (item[1].casefold(), item[0]))


def _strata_row(
    cells: Cells,
    cols: list[tuple[Figure, str]],
    stratifier: Stratifier,
    key: str,
    label: str,
    *,
    total: bool = False,
) -> Row:
    written = []
    for figure, part in cols:
        cell = cells.get(figure.code, stratifier, key)
        written.append(
            shown(cell, figure, part) if cell else missing(figure.code, stratifier, key, part)
        )
    return Row(label, tuple(written), total)


def _short(figure: Figure) -> str:
    """A figure's title without the scale's name before the colon: "mean change"."""
    return figure.title.rsplit(": ", 1)[-1]


_BRACKETED = re.compile(r"\s*\([^)]*\)")
