"""What the analyst's pages show, apart from the routes: the chooser's state and options (periods,
and the board's practices and time banks as strata), and the report page's parts, one
`outcomes.service.evaluate` call per measure shown.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from urllib.parse import urlencode

from fhir_adapters.measures import COPRODUCTION, FUNNEL, SOCIAL_VALUE, WELLBEING, Report
from referral_service.errors import Invalid, NotFound
from referral_service.organisations import repository as organisations
from referral_service.organisations.models import Organisation, OrgKind
from referral_service.outcomes import service as outcomes
from referral_service.web import analyst_period as periods
from referral_service.web import analyst_sections as sections
from referral_service.web.analyst_period import Period
from referral_service.web.analyst_sections import Section
from referral_service.web.security import Viewer

WHOLE_BOARD = "The whole board"
# The order the report shows the measures in.
SHOWN = (FUNNEL.id, COPRODUCTION.id, WELLBEING.id, SOCIAL_VALUE.id)
OptionGroups = list[tuple[str, list[tuple[str, str]]]]


@dataclass(frozen=True, slots=True)
class Choice:
    """What the analyst asked for: the period, the stratum ("" for the whole board, else
    "Organization/<id>"), one measure or all (""), and a programme cost being entered."""

    period: Period
    focus: str
    measure: str = ""
    amount: str = ""


@dataclass(frozen=True, slots=True)
class Chooser:
    """The chooser form's fields as filled in, and its options."""

    period_code: str
    start: str  # the date fields: filled in only for custom dates
    end: str
    focus: str
    period_groups: OptionGroups
    focus_groups: OptionGroups

    def with_dates(self, start: str, end: str) -> Chooser:
        return replace(self, period_code=periods.CUSTOM, start=start, end=end)


@dataclass(frozen=True, slots=True)
class ReportPage:
    board_name: str
    period: Period
    focus: str
    scope: str  # who the figures cover, in words
    generated_at: datetime
    sections: tuple[Section, ...]
    cohorts: dict[str, str]  # measure id → who is counted
    csv_urls: dict[str, str]  # measure id → its CSV download
    chooser: Chooser
    amount: str  # the programme cost as typed, when the form comes back with an error

    @property
    def generated_text(self) -> str:
        at = self.generated_at
        return f"{periods.day_text(at.date())} at {at:%H:%M} UTC"


def chooser(
    viewer: Viewer, choice: Choice, today: date, orgs: list[Organisation] | None = None
) -> Chooser:
    code = periods.preset_code(choice.period)
    custom = code == periods.CUSTOM
    return Chooser(
        period_code=code,
        start=choice.period.start.isoformat() if custom else "",
        end=choice.period.end.isoformat() if custom else "",
        focus=choice.focus,
        period_groups=periods.choices(today),
        focus_groups=focus_groups(area(viewer) if orgs is None else orgs),
    )


def area(viewer: Viewer) -> list[Organisation]:
    """The practices and time banks in the analyst's board's area, practices first."""
    session, board = viewer.context.session, viewer.organisation.id
    return [
        *organisations.in_board_area(session, board, OrgKind.PRACTICE),
        *organisations.in_board_area(session, board, OrgKind.TIMEBANK),
    ]


def focus_groups(orgs: list[Organisation]) -> OptionGroups:
    practices = [(f"Organization/{o.id}", org_label(o)) for o in orgs if o.kind is OrgKind.PRACTICE]
    timebanks = [(f"Organization/{o.id}", org_label(o)) for o in orgs if o.kind is OrgKind.TIMEBANK]
    groups: OptionGroups = [("Board", [("", WHOLE_BOARD)])]
    groups += [
        (name, found)
        for name, found in (("Practices", practices), ("Time banks", timebanks))
        if found
    ]
    return groups


def org_label(org: Organisation) -> str:
    return f"{org.name} ({org.ods_code})" if org.ods_code else org.name


def report_page(viewer: Viewer, choice: Choice, today: date) -> ReportPage:
    """Every measure asked for, evaluated as the board for the chosen period and stratum.
    Invalid when `focus` is not one of the board's practices or time banks."""
    shown = _measures(choice.measure)
    orgs = area(viewer)
    scope = _scope(orgs, choice.focus)
    reports = [_evaluate(viewer, measure, choice) for measure in shown]
    settings = viewer.context.settings
    thresholds = settings.outcome_meaningful_change
    windows = (
        settings.outcome_baseline_window_days,
        settings.outcome_follow_up_min_weeks,
        settings.outcome_follow_up_max_weeks,
    )
    return ReportPage(
        board_name=viewer.organisation.name,
        period=choice.period,
        focus=choice.focus,
        scope=scope,
        generated_at=reports[0].generated_at,
        sections=tuple(_section(report, scope, thresholds) for report in reports),
        cohorts={r.measure.id: r.measure.cohort_text(*windows) for r in reports},
        csv_urls={r.measure.id: csv_url(r.measure.id, choice) for r in reports},
        chooser=chooser(viewer, choice, today, orgs),
        amount=choice.amount,
    )


def report_url(period: Period, focus: str, measure: str = "") -> str:
    """The report's own address: always its dates, so it reads the same however it was chosen."""
    return f"/analyst/report?{_query(period, focus, measure)}"


def csv_url(measure: str, choice: Choice) -> str:
    return f"/analyst/report.csv?{_query(choice.period, choice.focus, measure, measure_first=True)}"


def _query(period: Period, focus: str, measure: str, *, measure_first: bool = False) -> str:
    query = {"measure": measure} if measure_first else {}
    query |= {"start": period.start.isoformat(), "end": period.end.isoformat()}
    if focus:
        query["focus"] = focus
    if measure and not measure_first:
        query["measure"] = measure
    return urlencode(query)


def _measures(measure: str) -> tuple[str, ...]:
    if not measure:
        return SHOWN
    if measure not in SHOWN:
        raise NotFound("Not found")
    return (measure,)


def _scope(orgs: list[Organisation], focus: str) -> str:
    if not focus:
        return WHOLE_BOARD
    for org in orgs:
        if focus == f"Organization/{org.id}":
            return org_label(org)
    raise Invalid("Choose the whole board, or one of its practices or time banks")


def _evaluate(viewer: Viewer, measure: str, choice: Choice) -> Report:
    return outcomes.evaluate(
        viewer.context,
        measure,
        choice.period.start,
        choice.period.end,
        viewer.organisation.id,
        choice.focus or None,
    )


def _section(report: Report, scope: str, thresholds: dict[str, float]) -> Section:
    measure = report.measure.id
    if measure == FUNNEL.id:
        return sections.funnel(report, scope)
    if measure == COPRODUCTION.id:
        return sections.coproduction(report, scope)
    if measure == WELLBEING.id:
        return sections.wellbeing(report, scope, thresholds)
    return sections.social_value(report, scope)
