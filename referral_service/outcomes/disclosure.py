"""Disclosure control: exact figures in (`Raw`), publishable `Cell`s out. Pure.

The rules, applied to every report (docs/outcomes.md; the thresholds are in fhir_adapters.measures):

1. Counts: 1 to 7 are suppressed (`SMALL_COUNT`); 0 is shown as 0; every other count is rounded
   to the nearest 5 (8 → 10, 12 → 10, 13 → 15).
2. Secondary suppression, per count figure and per stratifier "row" (the strata of one stratifier
   with the total): a row with a suppressed stratum must have at least two, summing to more than
   their number (so they cannot all be 1s); the smallest shown non-zero strata are added
   (`SECONDARY`) until that holds. The total is never suppressed secondarily (when it is 1 to 7
   it is suppressed itself, and so is every non-zero stratum), and a zero never is.
3. A statistic (hours, mean, median, share, ratio) follows its base count in the same stratum:
   hidden (`SMALL_N`) when that count is suppressed or its exact value is below MIN_N. A share also
   needs its numerator count shown and its exact complement (base − numerator) not 1 to 7.
   `n` is the base count as published (rounded). No one in the stratum: no value, not suppressed.
4. An estimate in money is `INPUTS`-suppressed when a figure it rests on is suppressed; it has
   no value, unsuppressed, when an input has nothing to report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from fhir_adapters.measures import (
    MIN_COUNT,
    MIN_N,
    ROUND_TO,
    Cell,
    Figure,
    FigureKind,
    MeasureDefinition,
    Stratifier,
    Suppression,
)
from referral_service.outcomes.statistics import published

StratumKey = tuple[Stratifier, str]
TOTAL: StratumKey = (Stratifier.TOTAL, "")
TOTAL_LABEL = "Total"

# The order strata are listed in, after the figure order of the Measure.
STRATIFIER_ORDER = {s: i for i, s in enumerate(Stratifier)}


@dataclass(frozen=True, slots=True)
class Raw:
    """One figure in one stratum before disclosure control, with exact values: a count, or a
    statistic (`low`/`high`: its CI or IQR). `value` None: nothing to compute from."""

    figure: str
    stratifier: Stratifier
    key: str
    label: str
    value: float | None
    low: float | None = None
    high: float | None = None

    @property
    def stratum(self) -> StratumKey:
        return (self.stratifier, self.key)


def small(count: int) -> bool:
    return 0 < count < MIN_COUNT


def rounded(count: int) -> int:
    """To the nearest ROUND_TO; counts are whole, so there is never a tie."""
    return ROUND_TO * round(count / ROUND_TO)


def suppress_counts(counts: Mapping[StratumKey, int]) -> dict[StratumKey, Suppression | None]:
    """Rules 1 and 2 for one count figure: each stratum's suppression (None: shown)."""
    marks: dict[StratumKey, Suppression | None] = {
        stratum: Suppression.SMALL_COUNT if small(count) else None
        for stratum, count in counts.items()
    }
    rows: dict[Stratifier, list[StratumKey]] = {}
    for stratum in counts:
        if stratum[0] is not Stratifier.TOTAL:
            rows.setdefault(stratum[0], []).append(stratum)
    for row in rows.values():
        _secondary(row, counts, marks)
    return marks


def _secondary(
    row: list[StratumKey],
    counts: Mapping[StratumKey, int],
    marks: dict[StratumKey, Suppression | None],
) -> None:
    hidden = [s for s in row if marks[s] is not None]
    if not hidden:
        return
    shown = sorted(
        (s for s in row if marks[s] is None and counts[s] > 0), key=lambda s: (counts[s], s[1])
    )
    while not _protected(hidden, counts) and shown:
        added = shown.pop(0)
        marks[added] = Suppression.SECONDARY
        hidden.append(added)


def _protected(hidden: Sequence[StratumKey], counts: Mapping[StratumKey, int]) -> bool:
    return len(hidden) >= 2 and sum(counts[s] for s in hidden) > len(hidden)


def disclose(measure: MeasureDefinition, raws: Iterable[Raw]) -> tuple[Cell, ...]:
    """Every raw cell of `measure` as published: counts, then the statistics resting on them."""
    by_figure: dict[str, dict[StratumKey, Raw]] = {}
    for raw in raws:
        by_figure.setdefault(raw.figure, {})[raw.stratum] = raw
    marks = {
        figure.code: suppress_counts(_exact_counts(by_figure.get(figure.code, {})))
        for figure in measure.figures
        if figure.kind is FigureKind.COUNT
    }
    order = {figure.code: i for i, figure in enumerate(measure.figures)}
    cells = [
        _cell(figure, raw, by_figure, marks)
        for figure in measure.figures
        for raw in by_figure.get(figure.code, {}).values()
    ]
    cells.sort(key=lambda c: (order[c.figure], STRATIFIER_ORDER[c.stratifier], c.key))
    return tuple(cells)


def _exact_counts(raws: Mapping[StratumKey, Raw]) -> dict[StratumKey, int]:
    return {stratum: _count(raw) for stratum, raw in raws.items()}


def _count(raw: Raw | None) -> int:
    return 0 if raw is None or raw.value is None else int(raw.value)


def _cell(
    figure: Figure,
    raw: Raw,
    by_figure: Mapping[str, Mapping[StratumKey, Raw]],
    marks: Mapping[str, Mapping[StratumKey, Suppression | None]],
) -> Cell:
    if figure.kind is FigureKind.COUNT:
        return _count_cell(raw, marks[figure.code][raw.stratum])
    if figure.kind is FigureKind.MONEY:
        raise ValueError("money cells are estimates: build them with `estimate`")
    if figure.base is None:
        raise ValueError(f"statistic {figure.code} names no base count")
    base = _count(by_figure.get(figure.base, {}).get(raw.stratum))
    hidden = marks[figure.base].get(raw.stratum) is not None or 0 < base < MIN_N
    if figure.kind is FigureKind.SHARE and not hidden:
        hidden = _share_hidden(figure, raw, base, by_figure, marks)
    if hidden:
        return _empty(raw, Suppression.SMALL_N)
    if base == 0 or raw.value is None:
        return Cell(raw.figure, raw.stratifier, raw.key, raw.label, None, n=rounded(base))
    return Cell(
        raw.figure,
        raw.stratifier,
        raw.key,
        raw.label,
        published(raw.value, figure.kind),
        low=None if raw.low is None else published(raw.low, figure.kind),
        high=None if raw.high is None else published(raw.high, figure.kind),
        n=rounded(base),
    )


def _share_hidden(
    figure: Figure,
    raw: Raw,
    base: int,
    by_figure: Mapping[str, Mapping[StratumKey, Raw]],
    marks: Mapping[str, Mapping[StratumKey, Suppression | None]],
) -> bool:
    if figure.numerator is None:
        raise ValueError(f"share {figure.code} names no numerator count")
    if marks[figure.numerator].get(raw.stratum) is not None:
        return True
    numerator = _count(by_figure.get(figure.numerator, {}).get(raw.stratum))
    return small(base - numerator)


def _count_cell(raw: Raw, mark: Suppression | None) -> Cell:
    if mark is not None:
        return _empty(raw, mark)
    return Cell(raw.figure, raw.stratifier, raw.key, raw.label, float(rounded(_count(raw))))


def _empty(raw: Raw, why: Suppression) -> Cell:
    return Cell(raw.figure, raw.stratifier, raw.key, raw.label, None, suppressed=why)


def estimate(figure: Figure, value: float | None, inputs: Sequence[Cell | None]) -> Cell:
    """Rule 4: an estimate (`value`, exact, in the figure's unit: pounds, or a ratio) from
    `inputs`, the published cells it rests on; an input None is one that is not there (no
    programme cost entered)."""
    if any(cell is not None and cell.suppressed is not None for cell in inputs):
        return Cell(
            figure.code, Stratifier.TOTAL, "", TOTAL_LABEL, None, suppressed=Suppression.INPUTS
        )
    if value is None or any(cell is None or cell.value is None for cell in inputs):
        return Cell(figure.code, Stratifier.TOTAL, "", TOTAL_LABEL, None)
    return Cell(figure.code, Stratifier.TOTAL, "", TOTAL_LABEL, published(value, figure.kind))
