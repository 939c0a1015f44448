"""Comparing a product Report with the independent calculation, cell by cell.

Every cell the product publishes must be what the independent calculation publishes: counts
exactly (after rounding), statistics to the published precision (a value within half a unit of the
last published decimal of the exact figure, so either rounding of a tie passes, and nothing else),
the same `n`; a cell the product hides must be one the calculation hides for the same reason: a
small count (true value 1–7), a secondary suppression (in each row the hidden strata's true values
are the ones the greedy rule picks), a statistic resting on a hidden count or fewer than 8 people.
Every figure the calculation has for a stratum with anyone in it must be in the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import pandas as pd

from fhir_adapters.measures import Cell, FigureKind, Report
from tests.outcomes.independent_disclosure import PRECISION, Published
from tests.outcomes.independent_figures import Figures, Key

K = FigureKind


@dataclass
class Comparison:
    compared: int = 0  # unsuppressed cells whose value was checked against the calculation
    hidden: int = 0  # suppressed cells whose reason was checked
    problems: list[str] = field(default_factory=list)
    secondary: int = 0  # of the hidden cells, those hidden to protect a small count


def compare(report: Report, found: Figures, mine: dict[Key, Published]) -> Comparison:
    result = Comparison()
    seen = set()
    for cell in report.cells:
        key = (cell.figure, cell.stratifier, cell.key)
        seen.add(key)
        kind = report.measure.figure(cell.figure).kind
        _check(result, kind, cell, mine.get(key), found.get(key))
    for key in mine:
        exact = found.get(key)
        if key not in seen and exact is not None and exact.count > 0:
            result.problems.append(f"{key}: missing from the report (true n {exact.count})")
    return result


def _check(
    result: Comparison,
    kind: FigureKind,
    cell: Cell,
    mine: Published | None,
    exact: object,
) -> None:
    where = f"{cell.figure} [{cell.stratifier.value}={cell.key}]"
    if mine is None:  # nobody in this stratum for this figure
        empty = cell.value in (None, 0) and cell.suppressed is None
        if not empty:
            result.problems.append(f"{where}: product {cell.value} {cell.suppressed}, no one here")
        return
    if cell.suppressed is not None:
        result.hidden += 1
        # A small count and one hidden to protect it are published alike, so a cell hidden for
        # the wrong one of the two would show as another cell shown or hidden where it should not.
        result.secondary += mine.protecting
        if cell.suppressed != mine.suppressed:
            result.problems.append(
                f"{where}: product hides ({cell.suppressed}), calculation {mine.suppressed} "
                f"value {mine.value} true {mine.exact}"
            )
        if cell.value is not None:
            result.problems.append(f"{where}: suppressed but carries a value {cell.value}")
        return
    if mine.suppressed is not None:
        result.problems.append(
            f"{where}: product shows {cell.value}, calculation hides ({mine.suppressed})"
        )
        return
    result.compared += 1
    if kind is K.COUNT:
        if cell.value != mine.value:
            result.problems.append(f"{where}: product {cell.value}, calculation {mine.value}")
        return
    digits = PRECISION[kind]
    for name, theirs, ours in (
        ("value", cell.value, mine.value),
        ("low", cell.low, mine.low),
        ("high", cell.high, mine.high),
    ):
        if not _close(theirs, ours, digits):
            result.problems.append(f"{where}: {name} product {theirs}, calculation {ours}")
    if kind is not K.MONEY and cell.n != mine.n:
        result.problems.append(f"{where}: n product {cell.n}, calculation {mine.n}")


def _close(theirs: float | None, ours: float | None, digits: int) -> bool:
    if theirs is None or ours is None:
        return theirs is None and ours is None
    published = round(theirs, digits) == theirs
    return published and abs(theirs - ours) <= 0.5 * 10**-digits + 1e-9


def row_differences(
    mine: dict[str, pd.DataFrame], theirs: dict[str, pd.DataFrame], keys: dict[str, list[str]]
) -> list[str]:
    """Every outcome row the product keeps against the one derived independently, column by
    column (times compared as UTC instants, dates as dates): what differs, or is only on one
    side. Columns the calculation does not derive (the product's own bookkeeping) are skipped."""
    found = []
    for table, key in keys.items():
        ours = _normal(mine[table]).set_index(key)
        product = _normal(theirs[table]).set_index(key)
        for missing in sorted(set(product.index) ^ set(ours.index), key=str)[:20]:
            side = "product" if missing in product.index else "calculation"
            found.append(f"{table} {missing}: only in the {side}")
        both = product.index.intersection(ours.index)
        for column in [c for c in product.columns if c in ours.columns]:
            a, b = ours.loc[both, column], product.loc[both, column]
            differ = ~((a == b) | (a.isna() & b.isna()))
            for index in list(a[differ].index)[:5]:
                found.append(f"{table} {index} {column}: product {b[index]!r}, mine {a[index]!r}")
    return found


def _normal(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        values = out[column].dropna()
        if len(values) and isinstance(values.iloc[0], datetime):  # pd.Timestamp is one too
            out[column] = pd.to_datetime(out[column], utc=True)
        elif len(values) and isinstance(values.iloc[0], date):
            out[column] = [None if pd.isna(v) else pd.Timestamp(v).date() for v in out[column]]
    return out
