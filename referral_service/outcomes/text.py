"""A report for a terminal (`spis outcomes report`, `make demo`): a plain-text table with the
disclosure rules and the social value assumptions beneath it (`render_table`), or plain JSON
(`report_json`). Only what the `Report` holds: every value already passed disclosure control."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import date

from fhir_adapters.measures import (
    MIN_COUNT,
    MIN_N,
    ROUND_TO,
    Cell,
    Figure,
    FigureKind,
    Report,
    Stratifier,
    Suppression,
)

MASKED: dict[Suppression, str] = {
    Suppression.SMALL_COUNT: "masked (small count)",
    Suppression.SECONDARY: "masked (secondary)",
    Suppression.SMALL_N: "masked (small n)",
    Suppression.INPUTS: "masked (inputs masked)",
}
WIDTH = 96  # the legend and the assumptions are wrapped to this
NOTHING = "-"  # no one in the stratum, or no programme cost entered
STRATIFIER_NAMES = {
    Stratifier.TOTAL: "",
    Stratifier.PRACTICE: "Practice",
    Stratifier.TIMEBANK: "Time bank",
    Stratifier.MONTH: "Month",
    Stratifier.REASON: "Reason",
}
LEGEND = (
    f"Counts of 1 to {MIN_COUNT - 1} are masked (small count); other counts are rounded to the "
    f"nearest {ROUND_TO}.",
    "Where one stratum of a row is masked, others are masked too (secondary), so that no masked "
    "count can be worked out from the total.",
    f"Hours, means, medians, shares and ratios are shown only when they rest on at least {MIN_N} "
    "people and their count is shown (small n); n is that count as published (rounded).",
    "A share also needs its count of people shown, and the people outside it not 1 to "
    f"{MIN_COUNT - 1}.",
    "An estimate resting on a masked figure is masked (inputs masked). '-' means nothing to "
    "report.",
    "Means come with their 95% confidence interval (t distribution); medians with the "
    "interquartile range (quartiles, inclusive method).",
)


def render_table(report: Report) -> str:
    lines = [report.measure.title, *_heading(report), ""]
    for figure in report.measure.figures:
        cells = [c for c in report.cells if c.figure == figure.code]
        if cells:
            lines += [*_figure_block(figure, cells), ""]
    lines.append("Disclosure control")
    for rule in LEGEND:
        lines += textwrap.wrap(rule, WIDTH, initial_indent="  ", subsequent_indent="    ")
    if report.assumptions:
        lines += ["", "Assumptions (this is an estimate)"]
        for a in report.assumptions:
            text = f"{a.label}: {a.value}"
            lines += textwrap.wrap(text, WIDTH, initial_indent="  ", subsequent_indent="    ")
    return "\n".join(lines) + "\n"


def _heading(report: Report) -> list[str]:
    period = f"{_day(report.period_start)} to {_day(report.period_end)}"
    found = [
        f"Health board: {report.board_name} ({report.board_id})",
        f"Period: {period} (inclusive, UTC)",
    ]
    if report.focus:
        found.append(f"Narrowed to: {report.focus}")
    generated = report.generated_at
    found.append(f"Generated: {_day(generated.date())} {generated:%H:%M} UTC")
    return found


def _day(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def _figure_block(figure: Figure, cells: Sequence[Cell]) -> list[str]:
    """A figure's strata, one a line: label, value, then the CI or IQR for means and medians,
    and n for every statistic."""
    spread = figure.kind in (FigureKind.MEAN, FigureKind.MEDIAN)
    statistic = figure.base is not None
    rows = [["Stratum", "Value", *([_range_title(figure.kind)] * spread), *(["n"] * statistic)]]
    for cell in cells:
        row = [_stratum(cell), _value(figure, cell)]
        row += [_range(figure, cell)] * spread + [_n(cell)] * statistic
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"{figure.title} [{figure.unit}]"]
    right = {1, len(widths) - 1} if statistic else {1}  # values and n
    for row in rows:
        fields = [
            f"{text:>{width}}" if i in right else f"{text:<{width}}"
            for i, (text, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append(("  " + "  ".join(fields)).rstrip())
    return lines


def _stratum(cell: Cell) -> str:
    name = STRATIFIER_NAMES[cell.stratifier]
    return f"{name}: {cell.label}" if name else cell.label


def _range_title(kind: FigureKind) -> str:
    return {FigureKind.MEAN: "95% CI", FigureKind.MEDIAN: "IQR"}.get(kind, "")


def _value(figure: Figure, cell: Cell) -> str:
    if cell.suppressed is not None:
        return MASKED[cell.suppressed]
    if cell.value is None:
        return NOTHING
    return number(figure.kind, cell.value)


def number(kind: FigureKind, value: float) -> str:
    """A published value written at its precision: 25, 12.5, 1.25, 45%, £1,234."""
    if kind is FigureKind.COUNT:
        return f"{value:.0f}"
    if kind is FigureKind.SHARE:
        return f"{value:.0f}%"
    if kind is FigureKind.MONEY:
        return f"-£{-value:,.0f}" if value < 0 else f"£{value:,.0f}"
    places = 2 if kind in (FigureKind.MEAN, FigureKind.RATIO) else 1
    return f"{value:.{places}f}"


def _range(figure: Figure, cell: Cell) -> str:
    if cell.low is None or cell.high is None:
        return ""
    return f"{number(figure.kind, cell.low)} to {number(figure.kind, cell.high)}"


def _n(cell: Cell) -> str:
    return "" if cell.n is None else str(cell.n)


def report_json(report: Report) -> dict[str, object]:
    """The report as plain JSON values: one object per cell, suppressed cells with no value."""
    figures = {f.code: f for f in report.measure.figures}
    return {
        "measure": report.measure.id,
        "title": report.measure.title,
        "board": {"id": report.board_id, "name": report.board_name},
        "period": {"start": report.period_start.isoformat(), "end": report.period_end.isoformat()},
        "focus": report.focus,
        "generated_at": report.generated_at.isoformat(),
        "cells": [_cell_json(figures[c.figure], c) for c in report.cells],
        "assumptions": [
            {"code": a.code, "label": a.label, "value": a.value} for a in report.assumptions
        ],
    }


def _cell_json(figure: Figure, cell: Cell) -> dict[str, object]:
    return {
        "figure": cell.figure,
        "figure_title": figure.title,
        "kind": figure.kind.value,
        "unit": figure.unit,
        "stratifier": cell.stratifier.value,
        "stratum": cell.key,
        "stratum_label": cell.label,
        "value": cell.value,
        "low": cell.low,
        "high": cell.high,
        "n": cell.n,
        "suppressed": None if cell.suppressed is None else cell.suppressed.value,
    }
