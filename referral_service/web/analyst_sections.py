"""The analyst's report page, measure by measure: which figures each part shows, as a chart and
the table beside it, and which strata tables follow.

Built from the `Report`s `outcomes.service.evaluate` returns (cells already through disclosure
control); nothing here counts or rounds anything. Every chart is drawn from the same cells, with
the same texts, as the table next to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from fhir_adapters.measures import (
    REJECTED_REASONS,
    SCALES,
    SOCIAL_VALUE,
    Assumption,
    Report,
    Stratifier,
)
from referral_service.web import charts
from referral_service.web.analyst_cells import (
    MASKED,
    STRATIFIER_TITLES,
    Cells,
    Table,
    figures_table,
    range_text,
    strata,
    strata_table,
    value_text,
)

STAGES = ("received", "routed", "accepted", "first-exchange", "completed")
TIMINGS = ("days-to-acceptance", "days-to-first-exchange")
HOURS = ("active-members", "hours-given", "hours-received", "reciprocity", "network-reach")
GIVING = ("enrolled", "givers", "gave-time", "days-to-first-gift")
VALUE_BARS = ("value-of-hours", "value-of-wellbeing", "social-value", "programme-cost")
VALUE_FIGURES = (*VALUE_BARS, "social-return")
BY_ORGANISATION = (Stratifier.PRACTICE, Stratifier.TIMEBANK)
BY_ALL = (Stratifier.PRACTICE, Stratifier.TIMEBANK, Stratifier.MONTH)
_BY = {Stratifier.PRACTICE: "practice", Stratifier.TIMEBANK: "time bank", Stratifier.MONTH: "month"}


@dataclass(frozen=True, slots=True)
class Block:
    """A chart (if the figures have one) with its table, and strata tables under a disclosure."""

    id: str
    heading: str
    chart: Markup | None
    table: Table
    notes: tuple[str, ...] = ()
    more: tuple[Table, ...] = ()

    @property
    def more_summary(self) -> str:
        """ "Hours given and received: by practice and time bank" """
        names = [STRATIFIER_TITLES[table.by].lower() for table in self.more]
        listed = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        return f"{self.heading}: by {listed}"


@dataclass(frozen=True, slots=True)
class Section:
    measure_id: str
    title: str
    description: str
    blocks: tuple[Block, ...]
    definitions: tuple[tuple[str, str], ...] = ()  # (figure title, how it is worked out)
    assumptions: tuple[Assumption, ...] = ()


def funnel(report: Report, scope: str) -> Section:
    cells = Cells(report)
    bars = [_bar(cells, code, Stratifier.TOTAL, "", cells.figure(code).title) for code in STAGES]
    stages = Block(
        "funnel-stages",
        "From referral to completion",
        charts.bar_chart("chart-funnel", "People at each stage, from referral to completion", bars),
        figures_table(cells, f"People at each stage: {scope}", STAGES),
        more=_strata_tables(cells, (*STAGES, "rejected", "declined"), "Funnel", BY_ALL),
    )
    blocks = [stages, *(_by_reason(cells, code, scope) for code in ("rejected", "declined"))]
    blocks.append(
        Block(
            "funnel-timings",
            "Days to acceptance and to the first exchange",
            None,
            figures_table(cells, f"Days from referral, median and quartiles: {scope}", TIMINGS),
            notes=("A median with its interquartile range (the middle half of the people).",),
            more=_strata_tables(cells, TIMINGS, "Days from referral", BY_ALL),
        )
    )
    return _section(report, blocks)


def coproduction(report: Report, scope: str) -> Section:
    cells = Cells(report)
    months = strata(cells, ("hours-given", "hours-received"), Stratifier.MONTH)
    groups = [
        charts.Group(
            label,
            tuple(_bar(cells, code, Stratifier.MONTH, key, label) for code in _GIVEN_RECEIVED),
        )
        for key, label in months
    ]
    hours = Block(
        "coproduction-hours",
        "Hours given and received, by month",
        charts.grouped_bar_chart(
            "chart-hours", "Hours given and received by month", ("Given", "Received"), groups
        ),
        strata_table(
            cells, "Time given and received, by month", HOURS, Stratifier.MONTH, total_label=scope
        ),
        notes=(
            "A person taking part in two months is counted in both months and once in the total.",
        ),
        more=_strata_tables(cells, HOURS, "Time given and received", BY_ORGANISATION),
    )
    giving = Block(
        "coproduction-giving",
        "Giving time: people enrolled in the period",
        None,
        figures_table(cells, f"Enrolled people who gave time: {scope}", GIVING),
        more=_strata_tables(cells, GIVING, "Giving time", BY_ALL),
    )
    return _section(report, [hours, giving])


_GIVEN_RECEIVED = ("hours-given", "hours-received")
_SCALE_FIGURES = ("pairs", "change", "improved", "improved-count", "declined", "declined-count")


def wellbeing(report: Report, scope: str, thresholds: Mapping[str, float]) -> Section:
    cells = Cells(report)
    blocks = [
        _scale(cells, code, title, better, thresholds.get(code), scope)
        for code, title, better in SCALES
    ]
    return _section(report, blocks)


def social_value(report: Report, scope: str) -> Section:
    cells = Cells(report)
    bars = [
        _bar(cells, code, Stratifier.TOTAL, "", cells.figure(code).title) for code in VALUE_BARS
    ]
    block = Block(
        "social-value-estimate",
        "Social value: an estimate",
        charts.bar_chart("chart-social-value", "Social value estimate and programme cost", bars),
        figures_table(cells, f"Social value estimate: {scope}", VALUE_FIGURES),
    )
    definitions = tuple((f.title, f.description) for f in SOCIAL_VALUE.figures)
    return _section(report, [block], definitions=definitions, assumptions=report.assumptions)


# -- the parts -----------------------------------------------------------------------------------


def _section(
    report: Report,
    blocks: Sequence[Block],
    *,
    definitions: tuple[tuple[str, str], ...] = (),
    assumptions: tuple[Assumption, ...] = (),
) -> Section:
    measure = report.measure
    return Section(
        measure.id, measure.title, measure.description, tuple(blocks), definitions, assumptions
    )


def _bar(cells: Cells, code: str, stratifier: Stratifier, key: str, label: str) -> charts.Bar:
    cell = cells.get(code, stratifier, key)
    if cell is None:
        return charts.Bar(label, None, "not reported")
    figure = cells.figure(code)
    value = None if cell.suppressed else cell.value
    return charts.Bar(label, value, value_text(cell, figure), masked=cell.suppressed is not None)


def _by_reason(cells: Cells, code: str, scope: str) -> Block:
    figure = cells.figure(code)
    reasons = strata(cells, (code,), Stratifier.REASON)
    bars = [
        _bar(cells, code, Stratifier.REASON, key, _reason_label(key, label))
        for key, label in reasons
    ]
    title = f"{figure.title}, by reason"
    return Block(
        f"funnel-{code}",
        title,
        charts.bar_chart(f"chart-{code}", title, bars) if bars else None,
        strata_table(cells, title, (code,), Stratifier.REASON, total_label="All reasons"),
        notes=(figure.description,),
        more=_strata_tables(cells, (code,), figure.title, BY_ALL),
    )


def _reason_label(key: str, label: str) -> str:
    return label if label and label != key else REJECTED_REASONS.get(key, key)


def _scale(
    cells: Cells, code: str, title: str, higher_is_better: bool, threshold: float | None, scope: str
) -> Block:
    figures = tuple(f"{code}-{part}" for part in _SCALE_FIGURES)
    direction = (
        "Higher scores are better: a rise is an improvement."
        if higher_is_better
        else "Lower scores are better: a fall is an improvement."
    )
    notes = [direction]
    if threshold is not None:
        notes.append(f"A meaningful change is one of at least {threshold:g} points.")
    pairs = cells.get(f"{code}-pairs")
    chart = None
    if pairs is not None and pairs.suppressed is None and not pairs.value:
        notes.append("No one had both a baseline and a follow-up score in this period.")
    else:
        rows = [_interval(cells, f"{code}-change", Stratifier.TOTAL, "", scope)]
        rows += [
            _interval(cells, f"{code}-change", Stratifier.MONTH, key, label)
            for key, label in strata(cells, (f"{code}-change",), Stratifier.MONTH)
        ]
        chart = charts.interval_chart(
            f"chart-{code}",
            f"{title}: mean change with its 95% confidence interval",
            rows,
            note=direction,
        )
    return Block(
        f"wellbeing-{code}",
        title,
        chart,
        strata_table(
            cells, f"{title}: change, by month", figures, Stratifier.MONTH, total_label=scope
        ),
        notes=tuple(notes),
        more=_strata_tables(cells, figures, title, BY_ORGANISATION),
    )


def _interval(
    cells: Cells, code: str, stratifier: Stratifier, key: str, label: str
) -> charts.Interval:
    cell = cells.get(code, stratifier, key)
    if cell is None:
        return charts.Interval(label, None, None, None, "not reported")
    figure = cells.figure(code)
    if cell.suppressed is not None:
        return charts.Interval(label, None, None, None, MASKED[cell.suppressed], masked=True)
    text = value_text(cell, figure)
    if cell.value is not None:
        text = f"{text} (95% CI {range_text(cell, figure)})"
    return charts.Interval(label, cell.value, cell.low, cell.high, text)


def _strata_tables(
    cells: Cells,
    codes: Sequence[str],
    what: str,
    stratifiers: Sequence[Stratifier],
) -> tuple[Table, ...]:
    return tuple(
        strata_table(cells, f"{what}, by {_BY[s]}", codes, s)
        for s in stratifiers
        if strata(cells, codes, s)
    )
