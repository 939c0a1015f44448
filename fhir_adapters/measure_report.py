"""The outcome measures as FHIR (R4 `Measure`, `MeasureReport`) and as CSV. Pure, no database.

`measure_resource` publishes a `MeasureDefinition` (`measures.py`); `measure_report` and
`report_csv` render a `Report` whose cells have already passed disclosure control. Shapes, as
documented in docs/api.md ("Outcome reports"):

- One Measure per family of figures, one group per figure (code in `FIGURE_SYSTEM`), one
  stratifier per `Stratifier` (code in `STRATIFIER_SYSTEM`). R4 has one `scoring` per Measure:
  the funnel is a `cohort` measure, the other three `continuous-variable`; each group also says
  its own scoring, improvement direction and unit with the R5 cross-version extensions for
  `Measure.group.scoring`, `.improvementNotation` and `.scoringUnit`.
- Populations: a count is the group's `initial-population`; a share has `denominator` (its base
  count) and `numerator`; a mean, median, hours or ratio has `measure-population` (the people it
  rests on, published as its `n`) and its value in `measureScore`; money has `measureScore` only.
- The 95% confidence interval of a mean and the interquartile range of a median are SPIS
  extensions holding a Range, on the group (the total) and on each stratum.
- A suppressed number is absent, with data-absent-reason `masked` and an SPIS extension naming
  the rule (`small-count`, `secondary`, `small-n`, `inputs-suppressed`); a number there is nothing
  to report for (no one in the stratum, no programme cost entered) has `not-applicable`.
- Never `subjectResults`: a report holds aggregates only.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

from fhir_adapters.codes import DECLINE_REASON_SYSTEM, ODS_SYSTEM, SPIS_CODESYSTEM_BASE
from fhir_adapters.csv_text import guard
from fhir_adapters.measure_resource import (
    DATA_ABSENT_REASON,
    POPULATION_SYSTEM,
    SUPPRESSION_URL,
    figure_code,
    improvement,
    measure_resource,
    quantity,
    stratifier_code,
)
from fhir_adapters.measures import (
    REJECTED_REASON_SYSTEM,
    Cell,
    Figure,
    FigureKind,
    Report,
    Stratifier,
)

__all__ = ["CSV_HEADER", "measure_report", "measure_resource", "report_csv"]

_SPIS: Final = SPIS_CODESYSTEM_BASE.removesuffix("/CodeSystem")
CI95_URL: Final = f"{_SPIS}/StructureDefinition/measure-score-ci95"
IQR_URL: Final = f"{_SPIS}/StructureDefinition/measure-score-iqr"
ASSUMPTION_URL: Final = f"{_SPIS}/StructureDefinition/estimate-assumption"
ORGANISATION_ID_SYSTEM: Final = f"{_SPIS}/Id/organisation"
ABSENT_REASON_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
UNKNOWN: Final = "unknown"

# Published precision (decimal places) per kind: the disclosure module rounds, this writes.
DECIMALS: Final[dict[FigureKind, int]] = {
    FigureKind.COUNT: 0,
    FigureKind.HOURS: 1,
    FigureKind.MEAN: 2,
    FigureKind.MEDIAN: 1,
    FigureKind.SHARE: 0,
    FigureKind.RATIO: 2,
    FigureKind.MONEY: 0,
}
CSV_HEADER: Final = (
    "measure",
    "figure",
    "figure_title",
    "stratifier",
    "stratum",
    "stratum_label",
    "value",
    "low",
    "high",
    "n",
    "unit",
    "suppressed",
)

_Cells = dict[tuple[str, Stratifier, str], Cell]


def measure_report(report: Report, *, base_url: str) -> dict[str, Any]:
    """A summary MeasureReport of `report`: one group per figure, its strata per stratifier.
    `base_url` (the FHIR base that evaluated it) is the report's `meta.source`."""
    definition = report.measure
    cells = {(c.figure, c.stratifier, c.key): c for c in report.cells}
    subject = report.focus or f"Organization/{report.board_id}"
    resource: dict[str, Any] = {
        "resourceType": "MeasureReport",
        "meta": {"source": base_url},
        "status": "complete",
        "type": "summary",
        "measure": definition.url,
        "subject": {"reference": subject},
        "date": _instant(report.generated_at),
        "reporter": {"reference": f"Organization/{report.board_id}", "display": report.board_name},
        "period": {
            "start": report.period_start.isoformat(),
            "end": report.period_end.isoformat(),
        },
    }
    if definition.improvement:
        resource["improvementNotation"] = improvement(definition.improvement)
    if report.assumptions:
        resource["extension"] = [_assumption(a.code, a.label, a.value) for a in report.assumptions]
    resource["group"] = [_group(figure, cells) for figure in definition.figures]
    return resource


def _group(figure: Figure, cells: _Cells) -> dict[str, Any]:
    group: dict[str, Any] = {"code": figure_code(figure)}
    total = cells.get((figure.code, Stratifier.TOTAL, ""))
    group |= _numbers(figure, total, cells, Stratifier.TOTAL, "")
    if figure.stratifiers:
        group["stratifier"] = [_stratifier(figure, s, cells) for s in figure.stratifiers]
    return group


def _stratifier(figure: Figure, stratifier: Stratifier, cells: _Cells) -> dict[str, Any]:
    found: dict[str, Any] = {"code": [stratifier_code(stratifier)]}
    strata = [
        _stratum(figure, cell, cells)
        for cell in cells.values()
        if cell.figure == figure.code and cell.stratifier is stratifier
    ]
    if strata:  # FHIR JSON has no empty arrays
        found["stratum"] = strata
    return found


def _stratum(figure: Figure, cell: Cell, cells: _Cells) -> dict[str, Any]:
    stratum: dict[str, Any] = {"value": _stratum_value(figure, cell)}
    return stratum | _numbers(figure, cell, cells, cell.stratifier, cell.key)


def _numbers(
    figure: Figure, cell: Cell | None, cells: _Cells, stratifier: Stratifier, key: str
) -> dict[str, Any]:
    """`population`, `measureScore` and the range extension of one cell (a group or stratum)."""
    out: dict[str, Any] = {}
    if figure.kind is FigureKind.COUNT:
        out["population"] = [_population("initial-population", cell, value=True)]
        return out
    if cell is not None and cell.value is not None and cell.low is not None:
        out["extension"] = [_range(figure, cell)]
    populations = []
    if figure.kind is FigureKind.SHARE:
        populations.append(_population("denominator", cell))
        if figure.numerator:
            numerator = cells.get((figure.numerator, stratifier, key))
            populations.append(_population("numerator", numerator, value=True))
    elif figure.base:
        populations.append(_population("measure-population", cell))
    if populations:
        out["population"] = populations
    out["measureScore"] = _score(figure, cell)
    return out


def _population(code: str, cell: Cell | None, *, value: bool = False) -> dict[str, Any]:
    """A population whose count is the cell's value (a count figure) or its `n` (a statistic)."""
    population: dict[str, Any] = {"code": _population_code(code)}
    count = None if cell is None else (cell.value if value else cell.n)
    if count is not None:
        population["count"] = round(count)
    else:
        population["_count"] = {"extension": _absent(cell)}
    return population


def _score(figure: Figure, cell: Cell | None) -> dict[str, Any]:
    if cell is None or cell.value is None:
        return {"extension": _absent(cell)}
    return quantity(figure, _number(figure.kind, cell.value))


def _range(figure: Figure, cell: Cell) -> dict[str, Any]:
    url = IQR_URL if figure.kind is FigureKind.MEDIAN else CI95_URL
    low, high = (None if v is None else _number(figure.kind, v) for v in (cell.low, cell.high))
    value: dict[str, Any] = {}
    if low is not None:
        value["low"] = quantity(figure, low)
    if high is not None:
        value["high"] = quantity(figure, high)
    return {"url": url, "valueRange": value}


def _absent(cell: Cell | None) -> list[dict[str, Any]]:
    if cell is None or cell.suppressed is None:
        return [{"url": DATA_ABSENT_REASON, "valueCode": "not-applicable"}]
    return [
        {"url": DATA_ABSENT_REASON, "valueCode": "masked"},
        {"url": SUPPRESSION_URL, "valueCode": cell.suppressed.value},
    ]


def _stratum_value(figure: Figure, cell: Cell) -> dict[str, Any]:
    label = cell.label or cell.key
    if cell.stratifier is Stratifier.PRACTICE:
        return _coded(ODS_SYSTEM, cell.key, label)
    if cell.stratifier is Stratifier.TIMEBANK:
        return _coded(ORGANISATION_ID_SYSTEM, cell.key, label)
    if cell.stratifier is Stratifier.REASON:
        if cell.key == UNKNOWN:  # a decline recorded without a reason code
            return _coded(ABSENT_REASON_SYSTEM, UNKNOWN, label)
        declined = figure.code == "declined"
        return _coded(
            DECLINE_REASON_SYSTEM if declined else REJECTED_REASON_SYSTEM, cell.key, label
        )
    return {"text": cell.key}  # the month, "2026-07"


def _coded(system: str, code: str, text: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}], "text": text}


def _population_code(code: str) -> dict[str, Any]:
    return {"coding": [{"system": POPULATION_SYSTEM, "code": code}]}


def _assumption(code: str, label: str, value: str) -> dict[str, Any]:
    return {
        "url": ASSUMPTION_URL,
        "extension": [
            {"url": "code", "valueCode": code},
            {"url": "label", "valueString": label},
            {"url": "value", "valueString": value},
        ],
    }


def _number(kind: FigureKind, value: float) -> float | int:
    places = DECIMALS[kind]
    return round(value) if places == 0 else round(value, places)


def _instant(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- CSV ------------------------------------------------------------------------------------------


def report_csv(report: Report) -> str:
    """The header, one row per cell (figures in the Measure's order, the total first, then each
    stratifier), then one row per assumption of an estimate: figure `assumption:<code>`, its
    label as figure_title and its text as value. CRLF line ends (RFC 4180)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    definition = report.measure
    for figure in definition.figures:
        writer.writerows(_csv_row(definition.id, figure, c) for c in _ordered(figure, report.cells))
    for a in report.assumptions:
        row = (definition.id, f"assumption:{a.code}", a.label, "", "", "", a.value)
        writer.writerow(tuple(guard(text) for text in row) + ("",) * 5)
    return out.getvalue()


def _ordered(figure: Figure, cells: Iterable[Cell]) -> list[Cell]:
    order = (Stratifier.TOTAL, *figure.stratifiers)
    mine = [c for c in cells if c.figure == figure.code and c.stratifier in order]
    return sorted(mine, key=lambda c: order.index(c.stratifier))


def _csv_row(measure_id: str, figure: Figure, cell: Cell) -> tuple[str, ...]:
    shown = cell.suppressed is None
    text = (measure_id, figure.code, figure.title, cell.stratifier.value, cell.key, cell.label)
    numbers = (
        _csv_number(figure.kind, cell.value if shown else None),
        _csv_number(figure.kind, cell.low if shown else None),
        _csv_number(figure.kind, cell.high if shown else None),
        "" if cell.n is None or not shown else str(cell.n),
    )
    suppressed = "" if shown else f"masked: {cell.suppressed}"
    return (*(guard(t) for t in text), *numbers, guard(figure.unit), suppressed)


def _csv_number(kind: FigureKind, value: float | None) -> str:
    return "" if value is None else f"{value:.{DECIMALS[kind]}f}"
