"""Hand-made `Report`s for the analyst pages' tests: every figure of a measure in the total and in
each stratum, with values chosen here (not by the outcomes engine), some cells suppressed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from html.parser import HTMLParser

from fhir_adapters.measures import (
    Assumption,
    Cell,
    Figure,
    FigureKind,
    MeasureDefinition,
    Report,
    Stratifier,
    Suppression,
)

BOARD_ID = "board-1"
START, END = date(2026, 7, 1), date(2026, 9, 30)
STRATA: dict[Stratifier, list[tuple[str, str]]] = {
    Stratifier.PRACTICE: [("F84001", "Rushey Green Group Practice"), ("F84002", "Other Practice")],
    Stratifier.TIMEBANK: [("tb-1", "Catford Time Bank")],
    Stratifier.MONTH: [
        ("2026-07", "July 2026"),
        ("2026-08", "August 2026"),
        ("2026-09", "September 2026"),
    ],
    Stratifier.REASON: [
        ("no-address", "SPIS could not read the patient's home postcode"),
        ("full", "Full"),
    ],
}
DECIMALS = {
    FigureKind.COUNT: 0,
    FigureKind.HOURS: 1,
    FigureKind.MEAN: 2,
    FigureKind.MEDIAN: 1,
    FigureKind.SHARE: 0,
    FigureKind.RATIO: 2,
    FigureKind.MONEY: 0,
}
# A value per kind, scaled per stratum so that the numbers differ.
VALUES = {
    FigureKind.COUNT: 40.0,
    FigureKind.HOURS: 120.5,
    FigureKind.MEAN: 2.35,
    FigureKind.MEDIAN: 14.0,
    FigureKind.SHARE: 45.0,
    FigureKind.RATIO: 1.25,
    FigureKind.MONEY: 12345.0,
}


def cell(figure: Figure, stratifier: Stratifier, key: str, label: str, scale: float) -> Cell:
    value = round(VALUES[figure.kind] * scale, DECIMALS[figure.kind])
    if figure.kind is FigureKind.COUNT:
        value = float(round(value / 5) * 5)
    low = high = None
    if figure.kind is FigureKind.MEAN:
        low, high = round(value - 1.25, 2), round(value + 1.25, 2)
    if figure.kind is FigureKind.MEDIAN:
        low, high = value - 7, value + 7
    n = 40 if figure.base else None
    return Cell(figure.code, stratifier, key, label, value, low, high, n)


def masked(figure: Figure, stratifier: Stratifier, key: str, label: str) -> Cell:
    kind = Suppression.SMALL_COUNT if figure.kind is FigureKind.COUNT else Suppression.SMALL_N
    if figure.kind is FigureKind.MONEY:
        kind = Suppression.INPUTS
    return Cell(figure.code, stratifier, key, label, None, suppressed=kind)


def report(
    measure: MeasureDefinition, *, mask_key: str = "F84002", focus: str | None = None
) -> Report:
    """Every figure in the total (scale 1) and in every stratum (scale 0.5, 0.25, ...); the
    stratum `mask_key` suppressed in every figure; the programme cost not entered (None, not
    suppressed)."""
    cells: list[Cell] = []
    for figure in measure.figures:
        if figure.code == "programme-cost":
            cells.append(Cell(figure.code, Stratifier.TOTAL, "", "", None))
            continue
        cells.append(cell(figure, Stratifier.TOTAL, "", "", 1.0))
        for stratifier in figure.stratifiers:
            for i, (key, label) in enumerate(STRATA[stratifier]):
                if key == mask_key:
                    cells.append(masked(figure, stratifier, key, label))
                else:
                    cells.append(cell(figure, stratifier, key, label, 0.5 / (i + 1)))
    return Report(
        measure=measure,
        board_id=BOARD_ID,
        board_name="South East London ICB",
        period_start=START,
        period_end=END,
        generated_at=datetime(2026, 10, 2, 9, 30, tzinfo=UTC),
        cells=tuple(cells),
        focus=focus,
        assumptions=(
            Assumption("value-per-hour", "Value of an hour", "£12.21 (National Living Wage)"),
        ),
    )


# -- reading the page back -----------------------------------------------------------------------

Place = tuple[str, str, str, str]  # figure, stratifier, stratum key, part (value, range, n)


class _CellReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[Place, set[str]] = {}
        self._open: Place | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "td" and "data-figure" in found:
            self._open = (
                found["data-figure"] or "",
                found["data-stratifier"] or "",
                found["data-key"] or "",
                found["data-part"] or "",
            )
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._open is not None:
            self.cells.setdefault(self._open, set()).add("".join(self._text).strip())
            self._open = None


def page_cells(html: str) -> dict[Place, set[str]]:
    """Every table cell of an analyst page by the figure, stratum and part it says it shows,
    with the texts it is written as (a cell may be in more than one table)."""
    reader = _CellReader()
    reader.feed(html)
    return reader.cells
